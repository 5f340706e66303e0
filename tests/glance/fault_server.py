#!/usr/bin/python3
"""A tiny Glance + Keystone look-alike that injects faults, for
tests/glance/test_glance_fault.c.

Listens on 127.0.0.1 (port 0 = a free one), prints "PORT <n>" on stdout,
serves until killed.  The path (image id, image name) chooses the fault.
GET /_hits?key=METHOD%20/path answers {"n": count} (query strings are not
part of the key); GET /_stats answers connection and upload counters.
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
HITS = {}
STATS = {"connections": 0, "uploaded": 0, "tokens": 0}
TOKENS = {"current": None}
PASSWORD = "pw-s3cret-value"
PAGE_IMAGES = ["img-%02d" % i for i in range(7)]


def image(iid, status="active"):
    return {"id": iid, "name": "n-" + iid, "status": status, "size": 1024,
            "checksum": None, "owner": None, "visibility": "private",
            "disk_format": "raw", "container_format": "bare",
            "image_type": "snapshot", "locations": [], "tags": [],
            "self": "/v2/images/" + iid}


HTML_503 = ("<html>\n <head>\n  <title>503 Service Unavailable</title>\n </head>\n"
            " <body>\n  <h1>503 Service Unavailable</h1>\n  The server is busy.<br /><br />\n"
            " </body>\n</html>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    # -- helpers -----------------------------------------------------------
    def hit(self):
        key = "%s %s" % (self.command, urlsplit(self.path).path)
        with LOCK:
            HITS[key] = HITS.get(key, 0) + 1
            return HITS[key]

    def reply(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def webob(self, status, title, msg):
        self.reply(status, {"message": msg, "code": "%d %s" % (status, title), "title": title})

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                line = self.rfile.readline()
                n = int(line.strip().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                left = n
                while left:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        raise ConnectionError("short chunk")
                    left -= len(chunk)
                total += n
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authed(self):
        tok = self.headers.get("X-Auth-Token")
        return tok is None and TOKENS["current"] is None or tok == TOKENS["current"]

    def drop(self):
        self.close_connection = True

    # -- dispatch ----------------------------------------------------------
    def do_GET(self):
        u = urlsplit(self.path)
        p = u.path
        if p == "/_hits":
            key = parse_qs(u.query).get("key", [""])[0]
            with LOCK:
                return self.reply(200, {"n": HITS.get(key, 0)})
        if p == "/_stats":
            with LOCK:
                return self.reply(200, dict(STATS))
        n = self.hit()
        if p == "/versions":
            return self.reply(200, {"versions": [
                {"id": "v2.17", "status": "CURRENT", "links": []},
                {"id": "v2.16", "status": "SUPPORTED", "links": []},
                {"id": "v1.0", "status": "DEPRECATED", "links": []}]})
        if p == "/v3/auth/tokens":
            if self.headers.get("X-Auth-Token") != TOKENS["current"]:
                return self.reply(401, {"error": {"code": 401, "title": "Unauthorized",
                                                  "message": "The request you have made requires authentication."}})
            if self.headers.get("X-Subject-Token") != "user-token-1":
                return self.reply(404, {"error": {"code": 404, "title": "Not Found",
                                                  "message": "Could not find token."}})
            exp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 3600))
            return self.reply(200, {"token": {
                "user": {"id": "u-123", "name": "alice"},
                "project": {"id": "p-456", "name": "demo"},
                "roles": [{"name": "member"}, {"name": "admin"}],
                "expires_at": exp}})
        if p == "/v2/images":
            q = parse_qs(u.query)
            if q.get("image_type") != ["snapshot"] or q.get("name") != ["a b&c"]:
                return self.webob(400, "Bad Request", "filters not passed: %s" % u.query)
            limit = int(q.get("limit", ["25"])[0])
            start = 0
            if "marker" in q:
                start = PAGE_IMAGES.index(q["marker"][0]) + 1
            page = PAGE_IMAGES[start:start + limit]
            body = {"images": [image(i) for i in page], "first": "/v2/images",
                    "schema": "/v2/schemas/images"}
            if start + limit < len(PAGE_IMAGES):
                body["next"] = "/v2/images?limit=%d&marker=%s&image_type=snapshot&name=a+b%%26c" % (
                    limit, page[-1])
            return self.reply(200, body)
        if not p.startswith("/v2/images/"):
            return self.webob(404, "Not Found", "no route " + p)
        iid = p[len("/v2/images/"):]
        if iid == "ok":
            return self.reply(200, image("ok"))
        if iid == "e500":
            return self.webob(500, "Internal Server Error", "boom: database is on fire")
        if iid == "flaky503":
            if n == 1:
                return self.reply(503, HTML_503, "text/html; charset=UTF-8")
            return self.reply(200, image("flaky503"))
        if iid == "r429":
            if n == 1:
                return self.reply(429, {"message": "slow down"}, headers={"Retry-After": "1"})
            return self.reply(200, image("r429"))
        if iid == "drop":
            return self.drop()
        if iid == "badjson":
            return self.reply(200, "{\"id\": \"badjson\", ")
        if iid == "stall":
            time.sleep(4)
            return self.reply(200, image("stall"))
        if iid == "missing":
            return self.reply(404, "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n"
                              "  <h1>404 Not Found</h1>\n  No image found with ID missing<br /><br />\n"
                              " </body>\n</html>", "text/html; charset=UTF-8")
        if iid == "forbidden":
            return self.webob(403, "Forbidden", "You are not authorized to complete get_image action.")
        if iid == "authed":
            if not self.authed():
                return self.webob(401, "Unauthorized", "This server could not verify that you are authorized")
            return self.reply(200, image("authed"))
        if iid == "queued-then-active":
            return self.reply(200, image(iid, "queued" if n < 3 else "active"))
        if iid == "killed":
            return self.reply(200, image(iid, "killed"))
        return self.webob(404, "Not Found", "No image found with ID " + iid)

    def do_HEAD(self):
        return self.do_GET()

    def do_POST(self):
        p = urlsplit(self.path).path
        self.hit()
        if p == "/_reset":
            self.read_body()
            with LOCK:
                HITS.clear()
                STATS["uploaded"] = 0
            return self.reply(200, {})
        if p == "/v3/auth/tokens":
            body = json.loads(self.read_body() or b"{}")
            ident = body.get("auth", {}).get("identity", {})
            ok = False
            if "password" in ident.get("methods", []):
                user = ident["password"]["user"]
                ok = user.get("password") == PASSWORD and user.get("name") == "alice"
            if "application_credential" in ident.get("methods", []):
                ac = ident["application_credential"]
                ok = ac.get("id") == "ac-1" and ac.get("secret") == PASSWORD
            if not ok:
                return self.reply(401, {"error": {"code": 401, "title": "Unauthorized",
                                                  "message": "The request you have made requires authentication."}})
            with LOCK:
                STATS["tokens"] += 1
                TOKENS["current"] = "tok-%d-%s" % (STATS["tokens"], uuid.uuid4().hex)
                tok = TOKENS["current"]
            base = "http://127.0.0.1:%d" % self.server.server_address[1]
            exp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 3600))
            iss = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time()))
            return self.reply(201, {"token": {
                "expires_at": exp, "issued_at": iss, "user": {"id": "u-1", "name": "alice"},
                "roles": [{"name": "admin"}],
                "catalog": [{"type": "image", "endpoints": [
                    {"interface": "internal", "region": "RegionOne", "url": "http://192.0.2.1:1/"},
                    {"interface": "public", "region": "RegionOne", "url": base + "/v2/"}]}]}},
                headers={"X-Subject-Token": tok})
        if p == "/v2/images":
            body = json.loads(self.read_body() or b"{}")
            name = body.get("name")
            if name == "fail500":
                return self.webob(500, "Internal Server Error", "create exploded")
            if name == "dup":
                return self.webob(409, "Conflict", "Image with identifier %s already exists!" % body.get("id"))
            if name == "big":
                return self.webob(413, "Request Entity Too Large", "Image storage media is full")
            if name == "bad":
                return self.webob(400, "Bad Request", "Invalid disk format")
            want = {"image_type": "snapshot", "image_location": "snapshot", "image_state": "available",
                    "disk_format": "raw", "container_format": "bare", "visibility": "private"}
            for k, v in want.items():
                if body.get(k) != v:
                    return self.webob(400, "Bad Request", "missing %s" % k)
            if body.get("instance_uuid") != "inst-1" or body.get("extra_key") != "extra value":
                return self.webob(400, "Bad Request", "properties not passed")
            img = image(body.get("id") or str(uuid.uuid4()), "queued")
            return self.reply(201, img)
        if p.endswith("/locations"):
            self.read_body()
            iid = p.split("/")[3]
            if iid == "locok":
                return self.reply(202, "")
            return self.webob(403, "Forbidden", "service role required")
        return self.webob(404, "Not Found", "no route " + p)

    def do_PATCH(self):
        p = urlsplit(self.path).path
        self.hit()
        body = json.loads(self.read_body() or b"[]")
        if self.headers.get("Content-Type") != "application/openstack-images-v2.1-json-patch":
            return self.webob(415, "Unsupported Media Type", "wrong content type")
        iid = p[len("/v2/images/"):]
        if iid == "p503":
            return self.reply(503, HTML_503, "text/html")
        if not (isinstance(body, list) and body and body[0].get("op") == "add"
                and body[0].get("path") == "/locations/-"
                and body[0]["value"]["url"].startswith("rbd://")
                and body[0]["value"]["metadata"] == {}):
            return self.webob(400, "Bad Request", "bad patch %r" % body)
        return self.reply(200, image(iid))

    def do_PUT(self):
        p = urlsplit(self.path).path
        self.hit()
        try:
            n = self.read_body()
        except (ConnectionError, ValueError):
            return self.drop()
        if isinstance(n, bytes):
            n = len(n)
        with LOCK:
            STATS["uploaded"] = n
        if self.headers.get("Content-Type") != "application/octet-stream":
            return self.webob(400, "Bad Request", "wrong content type")
        if "/up500/" in p:
            return self.webob(500, "Internal Server Error", "store failed")
        return self.reply(204, "")

    def do_DELETE(self):
        p = urlsplit(self.path).path
        self.hit()
        iid = p[len("/v2/images/"):]
        if iid == "inuse":
            return self.webob(409, "Conflict", "Image inuse is in use by a clone")
        if iid == "d503":
            return self.reply(503, HTML_503, "text/html")
        return self.reply(204, "")


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients hang up on purpose
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = Server(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
