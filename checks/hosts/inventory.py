"""Facts about the inventory itself (how many hosts per role), as measurements."""
from __future__ import annotations

from golive.model import Evidence, Measurement


def hosts_with_role(target_name: str, role: str, hosts: dict[str, list[str]]) -> Measurement:
    """Number of hosts in the target inventory that carry ``role`` (``all`` = every host).

    ``hosts`` maps host name to its roles.  Measured from the inventory the operator
    declares; whether each host answers is measured by the other host checks.
    """
    names = sorted(n for n, roles in hosts.items() if role == "all" or role in roles)
    ev = Evidence(probe="hosts.count", subject=f"target {target_name}",
                  method=f"count hosts with role '{role}' in the target inventory",
                  tool="golive inventory", raw=", ".join(names) or "(none)", data={"hosts": names, "role": role})
    return Measurement(value=len(names), display=f"{len(names)} host{'s' if len(names) != 1 else ''}"
                       + (f" ({', '.join(names)})" if names else ""), evidence=ev, unit="hosts")
