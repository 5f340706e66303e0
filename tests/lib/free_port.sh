# tests/lib/free_port.sh — sourced by the bash test libraries.
#
# free_port: print a TCP port on 127.0.0.1 that nobody listens on, from
# 23000 up to the start of the kernel's ephemeral range (a port in that
# range can be taken at any moment by an outgoing connection, which a
# connect() probe cannot see), above every lab's port block (19xxx-22xxx).
free_port() {
    local p lo=32768 _hi
    read -r lo _hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
    ((lo > 25000)) || lo=40000   # a low ephemeral range: probe 23000-39999 anyway
    for _ in $(seq 50); do
        p=$((23000 + RANDOM % (lo - 23000)))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}
