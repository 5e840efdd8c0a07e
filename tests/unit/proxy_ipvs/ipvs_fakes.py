"""Stand-ins for what IpvsDataplane drives besides netlink: kube-ipvs0 and the ipset/iptables tools."""

from __future__ import annotations


class FakeDevice:
    """kube-ipvs0 in memory."""

    name = "kube-ipvs0"

    def __init__(self):
        self.addrs: set[str] = set()
        self.present = False

    def ensure(self):
        created = not self.present
        self.present = True
        return created

    def exists(self):
        return self.present

    def addresses(self):
        return set(self.addrs)

    def reconcile(self, wanted, family, unbind=True):
        wanted = set(wanted)
        new = wanted - self.addrs
        stale = (self.addrs - wanted) if unbind else set()
        self.addrs = (self.addrs | new) - stale
        return len(new), len(stale)

    def bind(self, addresses):
        new = set(addresses) - self.addrs
        self.addrs |= new
        return len(new)

    def unbind(self, addresses):
        stale = set(addresses) & self.addrs
        self.addrs -= stale
        return len(stale)

    def delete(self):
        self.present = False
        self.addrs.clear()


class FakeTools:
    """A ToolRunner whose ``ipset`` keeps real set contents and whose ``iptables-restore``
    keeps the last input; jumps (``-C``/``-I``) are remembered too."""

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []
        self.sets: dict[str, set[str]] = {}
        self.restored: dict[str, str] = {}  # binary -> last iptables-restore input
        self.jumps: set[tuple[str, ...]] = set()

    def run(self, args, stdin=None, check=True):
        args = tuple(args)
        self.calls.append(args)
        if args == ("ipset", "save"):
            return self._save()
        if args[:1] == ("ipset",) and "restore" in args:
            self._restore(stdin or "", exist="-exist" in args)
            return ""
        if args[0].endswith("-restore"):
            self.restored[args[0]] = stdin or ""
            return ""
        if "-I" in args:
            self.jumps.add(self._jump(args, "-I"))
        return ""

    def ok(self, args):
        args = tuple(args)
        self.calls.append(args)
        return "-C" in args and self._jump(args, "-C") in self.jumps

    @staticmethod
    def _jump(args, flag):
        i = args.index(flag)
        return (args[i - 1], *args[i + 1 :])  # table, chain, spec

    def _save(self) -> str:
        out = []
        for name, members in sorted(self.sets.items()):
            out.append(f"create {name} x")
            out += [f"add {name} {m}" for m in sorted(members)]
        return "\n".join(out) + "\n"

    def _restore(self, script: str, exist: bool) -> None:
        for line in script.splitlines():
            op, name, *rest = line.split()
            if op == "create":
                if name in self.sets and not exist:
                    raise AssertionError(f"set {name} exists")
                self.sets.setdefault(name, set())
            elif op == "destroy":
                del self.sets[name]
            elif op == "add":
                if rest[0] in self.sets[name] and not exist:
                    raise AssertionError(f"{rest[0]} already in {name}")
                self.sets[name].add(rest[0])
            elif op == "del":
                if rest[0] not in self.sets[name] and not exist:
                    raise AssertionError(f"{rest[0]} not in {name}")
                self.sets[name].discard(rest[0])
            else:
                raise AssertionError(f"unexpected ipset restore line {line!r}")
