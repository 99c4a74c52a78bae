"""What each tool of the enumeration benchmark says an endpoint accepts, how the tools'
answers are compared, and the summary the runner prints.

A :class:`View` is one tool's answer for one endpoint: protocols, suites (in the tool's listing
order), groups, and what the tool tested at all, so that a suite one tool never offers is
reported as "not tested" rather than as a mismatch.
"""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU_RATIO_TARGET = 40.0  # sslyze CPU / certscope CPU, at least
WALL_RATIO_TARGET = 1.0  # certscope wall / sslscan wall, at most

SSLYZE_PROTOCOLS = {
    "ssl_2_0_cipher_suites": "SSLv2",
    "ssl_3_0_cipher_suites": "SSLv3",
    "tls_1_0_cipher_suites": "TLSv1.0",
    "tls_1_1_cipher_suites": "TLSv1.1",
    "tls_1_2_cipher_suites": "TLSv1.2",
    "tls_1_3_cipher_suites": "TLSv1.3",
}
SSLSCAN_PROTOCOLS = {
    ("ssl", "2"): "SSLv2",
    ("ssl", "3"): "SSLv3",
    ("tls", "1.0"): "TLSv1.0",
    ("tls", "1.1"): "TLSv1.1",
    ("tls", "1.2"): "TLSv1.2",
    ("tls", "1.3"): "TLSv1.3",
}
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@dataclass
class View:
    protocols: dict[str, bool | None] = field(default_factory=dict)
    suites: dict[str, list[int]] = field(default_factory=dict)  # in the tool's listing order
    groups: set[str] = field(default_factory=set)
    groups_tested: set[str] | None = None  # None: every group certscope tests
    suites_tested: dict[str, set[int]] | None = None  # None: the tool does not say
    unknown_names: list[str] = field(default_factory=list)
    extra_groups: set[str] = field(default_factory=set)  # accepted, not tested by certscope
    error: str = ""


def certscope_view(row: dict[str, Any]) -> View:
    return View(
        protocols=dict(row["protocols"]),
        suites={p: list(c) for p, c in row["suites"].items()},
        groups=set(row["groups"]),
        error="" if row["complete"] else f"incomplete: {row['error']}",
    )


def _suite_code(suites_mod: Any, name: str, openssl_name: str | None) -> int | None:
    suite = suites_mod.by_name(name)
    if suite is None and openssl_name:
        suite = suites_mod.by_openssl_name(openssl_name)
    return None if suite is None else int(suite.code)


_SSLYZE_CURVES = {"X25519": "x25519", "X448": "x448"}


def sslyze_view(server: dict[str, Any], ec_candidates: set[str]) -> View:
    from certscope.tls import suites as suites_mod

    view = View()
    if server.get("connectivity_status") != "COMPLETED":
        view.error = f"connectivity {server.get('connectivity_status')}: " + str(
            server.get("connectivity_error_trace")
        )
        return view
    result = server.get("scan_result") or {}
    for key, protocol in SSLYZE_PROTOCOLS.items():
        attempt = result.get(key) or {}
        if attempt.get("status") != "COMPLETED":
            view.protocols[protocol] = None
            view.error += f"{key} {attempt.get('status')}; "
            continue
        res = attempt["result"]
        tested = view.suites_tested = view.suites_tested or {}
        for rejected in res["rejected_cipher_suites"]:
            cs = rejected["cipher_suite"]
            code = _suite_code(suites_mod, cs["name"], cs.get("openssl_name"))
            if code is not None:
                tested.setdefault(protocol, set()).add(code)
        codes = []
        for accepted in res["accepted_cipher_suites"]:
            cs = accepted["cipher_suite"]
            code = _suite_code(suites_mod, cs["name"], cs.get("openssl_name"))
            if code is None:
                view.unknown_names.append(f"{protocol} {cs['name']}")
            else:
                codes.append(code)
                tested.setdefault(protocol, set()).add(code)
        view.protocols[protocol] = bool(res["is_tls_version_supported"])
        if codes:
            view.suites[protocol] = codes
    curves = result.get("elliptic_curves") or {}
    if curves.get("status") == "COMPLETED":
        res = curves["result"]

        def norm(entry: dict[str, Any]) -> str:
            name = str(entry["name"])
            return _SSLYZE_CURVES.get(name, name.lower())

        supported = {norm(c) for c in res.get("supported_curves") or []}
        curves_tested = supported | {norm(c) for c in res.get("rejected_curves") or []}
        view.groups_tested = curves_tested & ec_candidates
        view.groups = supported & ec_candidates
        view.extra_groups = supported - ec_candidates
    else:
        view.groups_tested = set()
        view.error += f"elliptic_curves {curves.get('status')}; "
    return view


def sslscan_view(xml_path: Path, candidates: set[str]) -> View:
    from certscope.tls.enumerate import group_name

    view = View()
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        view.error = f"no XML: {exc}"
        return view
    test = root.find("ssltest")
    if test is None:
        view.error = "no <ssltest> in the XML: " + (root.findtext("error") or "")
        return view
    for proto in test.findall("protocol"):
        name = SSLSCAN_PROTOCOLS.get((proto.get("type", ""), proto.get("version", "")))
        if name:
            view.protocols[name] = proto.get("enabled") == "1"
    for cipher in test.findall("cipher"):
        version = cipher.get("sslversion", "")
        protocol = {"SSLv2": "SSLv2", "SSLv3": "SSLv3"}.get(version, version)
        ident = cipher.get("id")
        if protocol not in PROTOCOLS or not ident:
            view.unknown_names.append(f"{version} {cipher.get('cipher')}")
            continue
        view.suites.setdefault(protocol, []).append(int(ident, 16))
    by_version: dict[str, set[str]] = {}
    for group in test.findall("group"):
        ident = group.get("id")
        if ident:
            by_version.setdefault(group.get("sslversion", ""), set()).add(
                group_name(int(ident, 16))
            )
    chosen = by_version.get("TLSv1.3") if view.protocols.get("TLSv1.3") else None
    if chosen is None:
        chosen = next(
            (by_version[v] for v in ("TLSv1.2", "TLSv1.1", "TLSv1.0") if v in by_version), set()
        )
    view.groups = chosen & candidates
    view.extra_groups = chosen - candidates
    return view


def compare(
    cs: View, other: View, tool: str, port: int, profile: str, *, order: dict[str, bool] | None
) -> list[dict[str, Any]]:
    """Differences between certscope's view and another tool's, one dict per finding."""
    from certscope.tls import suites as suites_mod

    def name(code: int) -> str:
        suite = suites_mod.by_code(code)
        return suite.name if suite is not None else f"0x{code:04X}"

    found: list[dict[str, Any]] = []

    def add(kind: str, **detail: Any) -> None:
        found.append({"tool": tool, "port": port, "profile": profile, "kind": kind, **detail})

    if cs.error:
        add("certscope_error", detail=cs.error)
    if other.error:
        add(f"{tool}_error", detail=other.error)
    for protocol in PROTOCOLS:
        a, b = cs.protocols.get(protocol), other.protocols.get(protocol)
        if protocol in other.protocols and a != b:
            add("protocol", protocol=protocol, certscope=a, other=b)
        sa, sb = set(cs.suites.get(protocol, ())), set(other.suites.get(protocol, ()))
        if other.suites_tested is not None and protocol in other.suites_tested:
            untested = sa - other.suites_tested[protocol]
            if untested:
                # Accepted by the server per certscope, never offered by the other tool.
                add(
                    "not_tested_by_" + tool,
                    protocol=protocol,
                    items=sorted(name(c) for c in untested),
                )
                sa -= untested
        if sa != sb:
            add(
                "suites",
                protocol=protocol,
                only_certscope=sorted(name(c) for c in sa - sb),
                only_other=sorted(name(c) for c in sb - sa),
            )
        elif (
            order and order.get(protocol) and cs.suites.get(protocol) != other.suites.get(protocol)
        ):
            add(
                "server_order",
                protocol=protocol,
                certscope=[name(c) for c in cs.suites[protocol]],
                other=[name(c) for c in other.suites.get(protocol, [])],
            )
    tested = other.groups_tested
    ga = cs.groups if tested is None else cs.groups & tested
    if ga != other.groups:
        add(
            "groups",
            only_certscope=sorted(ga - other.groups),
            only_other=sorted(other.groups - ga),
        )
    if other.extra_groups:
        # Accepted per the other tool, among groups certscope does not offer.
        add("not_tested_by_certscope", protocol="groups", items=sorted(other.extra_groups))
    if other.unknown_names:
        add("unmapped_names", names=other.unknown_names)
    return found


# --- summary -----------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _row(summary: list[dict[str, Any]], tool: str, start: str) -> dict[str, Any] | None:
    return next((r for r in summary if r["tool"] == tool and r["mode"].startswith(start)), None)


def ratios(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """Headlines: sslyze's CPU against certscope's parallel pass (both scan several endpoints
    at a time), certscope's sequential wall against sslscan's (both one endpoint at a time)."""
    seq = _row(summary, "certscope", "sequential")
    par = next((r for r in summary if r["tool"] == "certscope" and r is not seq), None)
    yz = _row(summary, "sslyze", "1 process per configuration")
    sc = _row(summary, "sslscan", "")
    out: dict[str, Any] = {}
    if yz and seq and par:
        cpu_par = yz["cpu_per_endpoint"] / par["cpu_per_endpoint"]
        cpu_seq = yz["cpu_per_endpoint"] / seq["cpu_per_endpoint"]
        out.update(
            sslyze_cpu_over_certscope_cpu_parallel=cpu_par,
            sslyze_cpu_over_certscope_cpu_sequential=cpu_seq,
            cpu_target=CPU_RATIO_TARGET,
            cpu_target_met=cpu_par >= CPU_RATIO_TARGET,
            cpu_target_met_sequential=cpu_seq >= CPU_RATIO_TARGET,
        )
    if sc and seq:
        wall = seq["wall_per_endpoint"] / sc["wall_per_endpoint"]
        out.update(
            certscope_wall_sequential_over_sslscan_wall=wall,
            wall_target=WALL_RATIO_TARGET,
            wall_target_met=wall <= WALL_RATIO_TARGET,
            sslscan_cpu_over_certscope_cpu_sequential=sc["cpu_per_endpoint"]
            / seq["cpu_per_endpoint"],
        )
    return out


def print_report(
    report: dict[str, Any],
    summary: list[dict[str, Any]],
    mismatches: list[dict[str, Any]],
    ratios: dict[str, Any],
    by_profile: dict[str, list[int]],
) -> None:
    _print_summary(report["endpoints"], summary)
    _print_per_profile(report["tools"], by_profile)
    _print_ratios(ratios)
    _print_mismatches(mismatches)
    for err in report["errors"]:
        print(f"ERROR: {err}")


def _print_summary(n: int, summary: list[dict[str, Any]]) -> None:
    print(f"\n=== Enumeration of {n} loopback endpoints ===")
    print(f"{'tool':10} {'mode':72} {'CPU s/ep':>9} {'wall s/ep':>9} {'conns/ep':>9} {'fail':>5}")
    for r in summary:
        conns = "-" if r["connections"] is None else f"{r['connections']:.0f}"
        fails = "-" if r["failures"] is None else str(r["failures"])
        print(
            f"{r['tool']:10} {r['mode']:72} {_fmt(r['cpu_per_endpoint']):>9} "
            f"{_fmt(r['wall_per_endpoint']):>9} {conns:>9} {fails:>5}"
        )


def _print_per_profile(tools: dict[str, Any], by_profile: dict[str, list[int]]) -> None:
    print("\nPer fleet configuration (CPU s / wall s per endpoint):")
    print(
        f"{'configuration':16} {'n':>3} {'certscope seq':>15} {'sslyze batch':>15} {'sslscan':>15}"
    )
    cs = tools.get("certscope", {})
    seq_rows = cs.get("sequential", {}).get("endpoints", [])
    yz_batches = {b["profile"]: b for b in tools.get("sslyze", {}).get("batches", [])}
    startup = tools.get("sslyze", {}).get("startup", {})
    sc_rows = tools.get("sslscan", {}).get("endpoints", [])

    def cell(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "-"
        cpu = statistics.fmean(r["cpu_s"] for r in rows)
        return f"{cpu:.3f} / {statistics.fmean(r['wall_s'] for r in rows):.3f}"

    for profile, ix in by_profile.items():
        b = yz_batches.get(profile)
        yz = "-"
        if b:
            cpu = (b["cpu_s"] - startup.get("cpu_s", 0)) / b["endpoints"]
            wall = (b["wall_s"] - startup.get("wall_s", 0)) / b["endpoints"]
            yz = f"{cpu:.3f} / {wall:.3f}"
        sc = cell([r for r in sc_rows if r["profile"] == profile])
        seq = cell([seq_rows[i] for i in ix if i < len(seq_rows)])
        print(f"{profile:16} {len(ix):>3} {seq:>15} {yz:>15} {sc:>15}")


def _print_ratios(ratios: dict[str, Any]) -> None:
    print("\nRatios:")
    if "sslyze_cpu_over_certscope_cpu_parallel" in ratios:
        met = "met" if ratios["cpu_target_met"] else "MISSED"
        print(
            f"  sslyze CPU / certscope CPU: "
            f"{ratios['sslyze_cpu_over_certscope_cpu_parallel']:.1f}x (certscope parallel), "
            f"{ratios['sslyze_cpu_over_certscope_cpu_sequential']:.1f}x (sequential)  "
            f"target >= {CPU_RATIO_TARGET:g}x (headline: parallel): {met}"
        )
    if "certscope_wall_sequential_over_sslscan_wall" in ratios:
        met = "met" if ratios["wall_target_met"] else "MISSED"
        print(
            f"  certscope wall / sslscan wall (both 1 endpoint at a time): "
            f"{ratios['certscope_wall_sequential_over_sslscan_wall']:.3f}  "
            f"target <= {WALL_RATIO_TARGET:g}: {met}"
        )
        print(
            "  sslscan CPU / certscope CPU (sequential): "
            f"{ratios['sslscan_cpu_over_certscope_cpu_sequential']:.1f}x"
        )


def _print_mismatches(mismatches: list[dict[str, Any]]) -> None:
    untested = [m for m in mismatches if m["kind"].startswith("not_tested_by_")]
    real = [m for m in mismatches if m not in untested]
    if untested:
        print(
            f"\nAccepted, but one of the two tools never offers it (not mismatches): "
            f"{len(untested)} findings"
        )
        seen: dict[tuple[str, str, str], int] = {}
        for m in untested:
            key = (m["kind"], m["protocol"], ", ".join(m["items"]))
            seen[key] = seen.get(key, 0) + 1
        for (kind, protocol, names), count in seen.items():
            print(f"  {kind}: {protocol} on {count} endpoint(s): {names}")
    print(f"\nMismatches: {len(real)}")
    for m in real:
        detail = {k: v for k, v in m.items() if k not in ("tool", "port", "profile", "kind")}
        print(f"  {m['tool']:18} port {m['port']} ({m['profile']}) {m['kind']}: {detail}")
