"""Attack: use the server's identity (root, capabilities, groups) to read what only it may, such
as /etc/shadow. A naive server running as root passes all of these to the run."""

from conftest import code, run_json, show

IDENTITY = code('''
    import json, os
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    maps = {}
    for name in ("uid_map", "gid_map"):
        try:
            with open("/proc/self/" + name) as f:
                maps[name] = [l.split() for l in f.read().splitlines()]
        except OSError as e:
            maps[name] = "errno %d" % e.errno
    try:
        with open("/etc/shadow", "rb") as f:
            shadow = "read %d bytes" % len(f.read())
    except OSError as e:
        shadow = "errno %d" % e.errno
    print(json.dumps({
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
        "groups": os.getgroups(), "status": status, "maps": maps, "shadow": shadow,
    }))
''')


def outside_id(mapping, inside):
    """The host id that `inside` maps to in a uid_map/gid_map listing, or None."""
    for line in mapping:
        first, lower, count = (int(x) for x in line)
        if first <= inside < first + count:
            return lower + inside - first
    return None


def test_runs_without_privileges(server):
    seen = run_json(server, IDENTITY)
    status = seen["status"]
    assert seen["shadow"].startswith("errno"), f"the run read /etc/shadow: {seen['shadow']}"
    assert status.get("CapEff") == "0000000000000000", f"the run has capabilities: {status.get('CapEff')}"
    assert status.get("CapPrm") == "0000000000000000", status.get("CapPrm")
    assert status.get("CapAmb", "0000000000000000") == "0000000000000000", status.get("CapAmb")
    assert status.get("NoNewPrivs") == "1", "no_new_privs is not set"
    assert status.get("Seccomp") == "2", "no seccomp filter is loaded"
    for kind, ids in (("uid", (seen["uid"], seen["euid"])), ("gid", (seen["gid"], seen["egid"]))):
        mapping = seen["maps"][kind + "_map"]
        assert isinstance(mapping, list), show(seen["maps"])
        for inside in ids:
            host = outside_id(mapping, inside)
            assert host is not None and host != 0, (
                f"the run's {kind} {inside} is host {kind} {host}: it must be unprivileged ({mapping})")
    # No supplementary groups beyond its own gid (65534 is how an unmapped group shows).
    extra = set(seen["groups"]) - {seen["gid"], 65534}
    assert not extra, f"the run has supplementary groups: {seen['groups']}"
    for inside in seen["groups"]:
        host = outside_id(seen["maps"]["gid_map"], inside)
        assert host != 0, f"the run belongs to the host's group 0: {seen['groups']}"
