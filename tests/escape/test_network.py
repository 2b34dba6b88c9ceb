"""Attacks over the network: reach the server's port, a service on the host's loopback, or the
kernel through netlink, raw, packet and vsock sockets. All stay on loopback; a naive server lets
the first two connect and the others open."""

import errno
import socket

from conftest import code, run_json, run_json_with, show



CONNECT = code('''
    import json, socket

    def connect(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        finally:
            s.close()

    def attempt(fn, *args):
        try:
            fn(*args)
            return "connected"
        except OSError as e:
            return "%s errno %s" % (type(e).__name__, e.errno)
''')


def test_cannot_connect_to_the_servers_port(server):
    result = run_json_with(server, CONNECT + code('''
        import sys
        port = json.load(sys.stdin)["port"]
        print(json.dumps({"server": attempt(connect, port), "ssh": attempt(connect, 22)}))
    '''), {"port": server.port})
    assert result["server"] != "connected", "the run connected to the server's own port"
    assert result["ssh"] != "connected", "the run connected to the host's port 22"


def test_cannot_reach_a_listener_on_the_hosts_loopback(server):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        result = run_json_with(server, CONNECT + code('''
            import sys

            def send_udp(port):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.sendto(b"escaped", ("127.0.0.1", port))
                finally:
                    s.close()

            ports = json.load(sys.stdin)
            print(json.dumps({"tcp": attempt(connect, ports["tcp"]),
                              "udp": attempt(send_udp, ports["udp"])}))
        '''), {"tcp": tcp_port, "udp": udp_port})
        assert result["tcp"] != "connected", "the run connected to a listener on the host's loopback"
        tcp.setblocking(False)
        udp.setblocking(False)
        try:
            conn, peer = tcp.accept()
            conn.close()
            raise AssertionError(f"the host listener accepted a connection from the run ({peer})")
        except BlockingIOError:
            pass
        try:
            data = udp.recv(100)
            raise AssertionError(f"the host received a datagram from the run: {data!r}")
        except BlockingIOError:
            pass
    finally:
        tcp.close()
        udp.close()


def test_netlink_packet_raw_and_vsock_sockets_are_refused(server):
    result = run_json(server, code('''
        import json, socket
        kinds = {
            "netlink": (socket.AF_NETLINK, socket.SOCK_RAW, 0),
            "packet": (getattr(socket, "AF_PACKET", 17), socket.SOCK_RAW, 0),
            "raw_icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
            "vsock": (getattr(socket, "AF_VSOCK", 40), socket.SOCK_STREAM, 0),
        }
        result = {}
        for name, (family, kind, proto) in kinds.items():
            try:
                socket.socket(family, kind, proto).close()
                result[name] = "opened"
            except OSError as e:
                result[name] = e.errno
        print(json.dumps(result))
    '''))
    opened = [k for k, v in result.items() if v == "opened"]
    assert not opened, f"the run opened sockets it must not: {opened} ({result})"
    # The sandbox refuses them (EPERM/EACCES); "not supported" would mean nothing was tested.
    assert result["netlink"] in (errno.EPERM, errno.EACCES), show(result)


def test_network_namespace_has_only_loopback(server):
    result = run_json(server, code('''
        import json, os
        result = {}
        try:
            with open("/proc/net/dev") as f:
                result["dev"] = [l.split(":")[0].strip() for l in f.read().splitlines()[2:]]
        except OSError as e:
            result["dev"] = "errno %d" % e.errno
        try:
            result["sys"] = sorted(os.listdir("/sys/class/net"))
        except OSError as e:
            result["sys"] = "errno %d" % e.errno
        print(json.dumps(result))
    '''))
    for source in ("dev", "sys"):
        value = result[source]
        if isinstance(value, list):
            assert set(value) <= {"lo"}, f"the run sees network interfaces: {result}"
