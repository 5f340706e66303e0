#!/usr/bin/python3
"""A minimal Glance v2 look-alike for the CLI tests when the lab has no
Glance: answers GET /v2/images/<id> for the ids given on the command line
(status "active", name "stub-<first 8 chars>"), 404 for any other id.
Listens on 127.0.0.1, a free port, printed as "PORT <n>" on stdout."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN = set(sys.argv[1:])


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.startswith("/v2/images/"):
            iid = p[len("/v2/images/"):]
            if iid in KNOWN:
                return self.send(200, {"id": iid, "name": "stub-" + iid[:8], "status": "active",
                                       "size": 1, "disk_format": "raw", "container_format": "bare",
                                       "visibility": "private", "locations": []})
            return self.send(404, {"message": "No image found with ID " + iid})
        if p in ("/", "/versions"):
            return self.send(200, {"versions": [{"id": "v2.16", "status": "CURRENT"}]})
        self.send(404, {"message": "not found"})


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("PORT %d" % srv.server_address[1], flush=True)
srv.serve_forever()
