"""The kubernetes source against an in-test API server speaking the real list/watch protocol.

The behaviours run against a real kube-apiserver and etcd too, in test_kubernetes_cluster.py.
This in-test server (tests/helpers/k8s_api.py) is kept for what a real one cannot be made to do on
demand: a watch cut mid-stream and resumed without a re-list (a real API server's restart
empties its watch cache, so the resumed watch gets 410), 429 with Retry-After, 401/403/500/503
injected on one request, ERROR events that are not 410, a fresh list refused with 410, and a
value that is not base64 (the real API server refuses to store one).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certscope.collector import source_fragments
from certscope.config import KubernetesSource
from certscope.sources import reader_for
from certscope.sources.base import WatchingReader
from certscope.sources.kubernetes import Backoff, KubernetesReader, parse_retry_after
from certscope.sources.kubernetes.stream import Stream, transport_error
from helpers.k8s_api import FakeKubeAPI, parse_label_selector
from helpers.kube_source import locations, names, tls, watching

CM_ISSUER = {
    "cert-manager.io/issuer-name": "letsencrypt",
    "cert-manager.io/issuer-kind": "ClusterIssuer",
    "cert-manager.io/certificate-name": "site",
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(tmp_path) as server:
        yield server


def make_reader(api: FakeKubeAPI, page_size: int = 500, **kw: Any) -> KubernetesReader:
    source = KubernetesSource(name="cluster", kubeconfig=str(api.kubeconfig), **kw)
    return KubernetesReader(
        source, debounce=0.05, backoff_base=0.05, backoff_cap=0.4, page_size=page_size
    )


# --- list ---------------------------------------------------------------------------------------


async def test_refresh_lists_pages_and_reads_tls_secrets(api: FakeKubeAPI, ca: trustme.CA) -> None:
    for i in range(12):
        api.put_secret(f"ns{i % 3}", f"site{i}", tls(ca, f"site{i}.test"))
    api.put_secret("ns0", "opaque", {"tls.crt": tls(ca, "x.test")["tls.crt"]}, type="Opaque")
    api.put_secret("ns0", "token", {"token": b"abc"}, type="kubernetes.io/service-account-token")
    reader = make_reader(api, page_size=5)
    assert isinstance(reader, WatchingReader)
    assert isinstance(reader_for(reader.source), KubernetesReader)
    result = await reader.refresh(None)
    assert result.up, result.error
    assert result.kind == "kubernetes"
    assert names(result) == {f"ns{i % 3}/site{i}" for i in range(12)}
    site0 = sorted(
        (c.location, c.position, c.facts.sans) for c in result.certs if "site0#" in c.location
    )
    assert site0 == [
        ("ns0/site0#ca.crt", 0, ()),
        ("ns0/site0#tls.crt", 0, ("site0.test",)),
        ("ns0/site0#tls.crt", 1, ()),  # the CA after the leaf: position kept
    ]
    lists = [c for c in api.calls if c.verb == "list"]
    assert len(lists) == 3  # 12 TLS Secrets in pages of 5
    assert [c.query.get("limit") for c in lists] == ["5", "5", "5"]
    assert "continue" not in lists[0].query and all("continue" in c.query for c in lists[1:])
    assert lists[0].query["fieldSelector"] == "type=kubernetes.io/tls"  # filtered server side
    assert result.errors == ()


async def test_expired_continue_token_restarts_the_list(api: FakeKubeAPI, ca: trustme.CA) -> None:
    for i in range(7):
        api.put_secret("ns", f"s{i}", tls(ca, f"s{i}.test", with_ca=False))
    api.fail(410, verb="list", with_continue=True)
    result = await make_reader(api, page_size=5).refresh(None)
    assert result.up and len(names(result)) == 7
    assert [(("continue" in c.query), c.status) for c in api.calls] == [
        (False, 200),
        (True, 410),  # continue token expired: start again
        (False, 200),
        (True, 200),
    ]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "unauthorized"), (403, "forbidden"), (429, "throttled"), (500, "http_error")],
)
async def test_refresh_failures_are_reasons_and_keep_previous(
    api: FakeKubeAPI, ca: trustme.CA, status: int, reason: str
) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    reader = make_reader(api)
    good = await reader.refresh(None)
    api.fail(status, times=None, retry_after=1 if status == 429 else None)
    bad = await reader.refresh(good)
    assert (bad.up, bad.error_reason) == (False, reason)
    assert f"HTTP {status}" in bad.error
    assert bad.certs == good.certs and bad.last_success == good.last_success


async def test_unreachable_and_bad_kubeconfig(api: FakeKubeAPI, tmp_path: Path) -> None:
    closed = api.write_kubeconfig(tmp_path / "closed", server="https://127.0.0.1:1")
    source = KubernetesSource(name="c", kubeconfig=str(closed))
    result = await KubernetesReader(source).refresh(None)
    assert (result.up, result.error_reason) == (False, "unreachable")
    (tmp_path / "bad").write_text("clusters: [")
    result = await KubernetesReader(
        KubernetesSource(name="c", kubeconfig=str(tmp_path / "bad"))
    ).refresh(None)
    assert (result.up, result.error_reason) == (False, "config_error")
    wrong = KubernetesSource(name="c", kubeconfig=str(api.kubeconfig), context="intruder")
    result = await KubernetesReader(wrong).refresh(None)
    assert (result.up, result.error_reason) == (False, "unauthorized")


async def test_in_cluster_service_account(
    api: FakeKubeAPI, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes_asyncio.config import incluster_config

    token, cafile = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text(api.token)
    cafile.write_bytes(api.ca.cert_pem.bytes())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cafile))
    api.put_secret("ns", "a", tls(ca, "a.test"))
    result = await KubernetesReader(KubernetesSource(name="pod")).refresh(None)
    assert result.up, result.error
    assert names(result) == {"ns/a"}


# --- watch --------------------------------------------------------------------------------------


async def test_watch_follows_added_modified_deleted(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    api.put_secret("ns", "b", tls(ca, "b.test"))
    reader = make_reader(api)
    async with watching(reader) as pub:
        first = await pub.until(lambda r: True)
        assert first.up and names(first) == {"ns/a", "ns/b"}
        await api.wait_watches(1)
        watch = next(c for c in api.calls if c.verb == "watch")
        lst = next(c for c in api.calls if c.verb == "list")
        assert watch.query["allowWatchBookmarks"].lower() == "true"
        assert watch.query["resourceVersion"] == str(api.rv)  # from the list's resourceVersion
        assert lst.query["limit"] == "500"

        api.put_secret("ns", "c", tls(ca, "c.test"))
        r = await pub.until(lambda r: "ns/c" in names(r))
        assert names(r) == {"ns/a", "ns/b", "ns/c"}

        api.put_secret("ns", "a", tls(ca, "renewed-a.test"))
        r = await pub.until(lambda r: any(c.facts.sans == ("renewed-a.test",) for c in r.certs))
        assert not any(c.facts.sans == ("a.test",) for c in r.certs)

        deleted_at = time.monotonic()
        api.delete("secrets", "ns", "b")
        r = await pub.until(lambda r: "ns/b" not in names(r))
        assert time.monotonic() - deleted_at < 1.0  # at once, not at the next re-list
        assert names(r) == {"ns/a", "ns/c"}
    assert api.count("list") == 1  # everything after the first list came from the watch


async def test_debounce_coalesces_a_burst(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    data = tls(ca, "burst.test")
    source = KubernetesSource(name="cluster", kubeconfig=str(api.kubeconfig))
    reader = KubernetesReader(source, debounce=0.5)
    async with watching(reader) as pub:
        await pub.until(lambda r: True)
        await api.wait_watches(1)
        before = len(pub.results)
        for i in range(40):
            api.put_secret("ns", f"burst{i}", data)
        await pub.until(lambda r: len(names(r)) == 41)
        assert len(pub.results) - before <= 3
        gaps = [b - a for a, b in zip(pub.times, pub.times[1:], strict=False)]
        assert all(g >= 0.45 for g in gaps)


async def test_bookmark_advances_resource_version(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    reader = make_reader(api)
    async with watching(reader) as pub:
        await pub.until(lambda r: True)
        await api.wait_watches(1)
        api.put_configmap("other", "unwatched", {"x": "y"})  # bumps the global resourceVersion
        api.bookmark()
        await asyncio.sleep(0.2)
        api.break_watches()
        await asyncio.sleep(0.3)
        await api.wait_watches(1)
    watches = [c for c in api.calls if c.verb == "watch"]
    assert len(watches) == 2
    assert (
        int(watches[1].query["resourceVersion"])
        == api.rv
        > int(watches[0].query["resourceVersion"])
    )
    assert api.count("list") == 1


async def test_broken_stream_resumes_without_relist(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    reader = make_reader(api)
    async with watching(reader) as pub:
        await pub.until(lambda r: True)
        await api.wait_watches(1)
        api.put_secret("ns", "b", tls(ca, "b.test"))
        await pub.until(lambda r: "ns/b" in names(r))
        seen = api.rv
        assert api.break_watches() == 1
        api.put_secret("ns", "c", tls(ca, "c.test"))  # while the watch is down
        api.delete("secrets", "ns", "a")
        r = await pub.until(lambda r: names(r) == {"ns/b", "ns/c"})
        assert r.up
    watches = [c for c in api.calls if c.verb == "watch"]
    assert watches[1].query["resourceVersion"] == str(seen)  # the last event seen, replayed on
    assert api.count("list") == 1


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-410"])
async def test_gone_relists(tmp_path: Path, ca: trustme.CA, as_http: bool) -> None:
    async with FakeKubeAPI(tmp_path, gone_as_http=as_http) as api:
        api.put_secret("ns", "a", tls(ca, "a.test"))
        api.put_secret("ns", "b", tls(ca, "b.test"))
        reader = make_reader(api)
        async with watching(reader) as pub:
            await pub.until(lambda r: True)
            await api.wait_watches(1)
            api.break_watches()
            api.delete("secrets", "ns", "a")
            api.put_secret("ns", "c", tls(ca, "c.test"))
            api.compact()  # the watch's resourceVersion is now too old
            r = await pub.until(lambda r: names(r) == {"ns/b", "ns/c"})
            assert r.up
        assert api.count("list") == 2
        gone = [c for c in api.calls if c.verb == "watch"][1]
        assert gone.status == (410 if as_http else 200)


async def test_throttled_honours_retry_after(api: FakeKubeAPI, ca: trustme.CA) -> None:
    for i in range(4):
        api.put_secret("ns", f"s{i}", tls(ca, f"s{i}.test", with_ca=False))
    api.fail(429, verb="list", with_continue=True, retry_after=1)
    reader = make_reader(api, page_size=2)
    async with watching(reader) as pub:
        down = await pub.until(lambda r: True)
        assert (down.up, down.error_reason) == (False, "throttled")
        up = await pub.until(lambda r: r.up)
        assert len(names(up)) == 4
    lists = [c for c in api.calls if c.verb == "list"]
    assert [c.status for c in lists] == [200, 429, 200]
    assert lists[2].query["continue"] == lists[1].query["continue"]  # the page is retried
    assert lists[2].at - lists[1].at >= 1.0


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "unauthorized"), (403, "forbidden"), (503, "http_error")]
)
async def test_failures_keep_last_good_data_and_recover(
    api: FakeKubeAPI, ca: trustme.CA, status: int, reason: str
) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    reader = make_reader(api)
    async with watching(reader) as pub:
        good = await pub.until(lambda r: r.up)
        await api.wait_watches(1)
        if status == 401:
            api.token = "rotated"
        else:
            api.fail(status, times=None)
        api.break_watches()
        bad = await pub.until(lambda r: not r.up)
        assert bad.error_reason == reason
        assert bad.certs == good.certs  # last good certificates kept
        assert bad.last_success is not None and bad.last_success <= bad.timestamp
        if status == 401:
            api.token = api.client_token
        api.clear_failures()
        again = await pub.until(lambda r: r.up)
        assert names(again) == {"ns/a"} and again.error_reason is None
    assert api.count("list") == 1


async def test_a_forbidden_namespace_is_an_item_error_and_every_one_fails_the_source(
    api: FakeKubeAPI, ca: trustme.CA
) -> None:
    api.put_secret("a", "s", tls(ca, "a.test"))
    api.put_secret("b", "s", tls(ca, "b.test"))
    api.fail(403, times=None, resource="configmaps")  # only ConfigMaps are denied
    reader = make_reader(api, namespaces=("a", "b"), configmaps=True)
    some = await reader.refresh(None)
    assert (some.up, some.error_reason) == (True, None)
    assert names(some) == {"a/s", "b/s"}
    assert sorted((e.location, e.reason) for e in some.errors) == [
        ("configmap:a/*", "forbidden"),
        ("configmap:b/*", "forbidden"),
    ]
    api.clear_failures()
    api.fail(403, times=None)  # now every namespace and resource
    every = await reader.refresh(some)
    assert (every.up, every.error_reason) == (False, "forbidden")
    assert every.certs == some.certs  # the last good certificates are kept
    async with watching(reader) as pub:
        down = await pub.until(lambda r: True)
        assert (down.up, down.error_reason) == (False, "forbidden")
        api.clear_failures()
        api.fail(403, times=None, resource="configmaps")
        up = await pub.until(lambda r: r.up and names(r) == {"a/s", "b/s"})
        assert {e.location for e in up.errors} == {"configmap:a/*", "configmap:b/*"}


async def test_error_events_and_a_refused_relist(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    api.fail(410, verb="list")  # a fresh list refused with 410: reported, backed off, retried
    reader = make_reader(api)
    async with watching(reader) as pub:
        down = await pub.until(lambda r: True)
        assert (down.up, down.error_reason) == (False, "http_error")
        await pub.until(lambda r: r.up and names(r) == {"ns/a"})
        await api.wait_watches(1)
        api.error_event(500, "etcd is sad")  # not 410: resume the watch, no re-list
        bad = await pub.until(lambda r: not r.up)
        assert bad.error_reason == "http_error" and "etcd is sad" in bad.error
        assert names(bad) == {"ns/a"}
        await pub.until(lambda r: r.up)
    assert api.count("list") == 1
    assert api.count("list", status=410) == 1


async def test_watch_reports_unreachable_and_keeps_trying(api: FakeKubeAPI, tmp_path: Path) -> None:
    closed = api.write_kubeconfig(tmp_path / "closed", server="https://127.0.0.1:1")
    reader = KubernetesReader(
        KubernetesSource(name="c", kubeconfig=str(closed)), backoff_base=0.05, backoff_cap=0.1
    )
    async with watching(reader) as pub:
        r = await pub.until(lambda r: True)
        assert (r.up, r.error_reason, r.certs) == (False, "unreachable", ())
        await asyncio.sleep(0.3)
    assert len(pub.results) >= 1


async def test_periodic_relist_refreshes_the_timestamp(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret("ns", "a", tls(ca, "a.test"))
    reader = make_reader(api, interval=1.0)
    async with watching(reader) as pub:
        first = await pub.until(lambda r: True)
        second = await pub.until(lambda r: True, timeout=4.0)
        assert second.timestamp > first.timestamp and second.up
        assert second.certs == first.certs
    assert api.count("list") >= 2
    watch = next(c for c in api.calls if c.verb == "watch")
    assert int(watch.query["timeoutSeconds"]) <= 2


# --- selection ----------------------------------------------------------------------------------


async def test_namespaces_include_exclude(api: FakeKubeAPI, ca: trustme.CA) -> None:
    for ns in ("a", "b", "c", "kube-system"):
        api.put_secret(ns, "s", tls(ca, f"{ns}.test", with_ca=False))
    reader = make_reader(api, namespaces=("a", "b", "c"), exclude_namespaces=("c",))
    result = await reader.refresh(None)
    assert names(result) == {"a/s", "b/s"}
    assert {(c.namespace, c.verb) for c in api.calls} == {("a", "list"), ("b", "list")}

    api.calls.clear()
    everywhere = make_reader(api, exclude_namespaces=("kube-system",))
    async with watching(everywhere) as pub:
        r = await pub.until(lambda r: True)
        assert names(r) == {"a/s", "b/s", "c/s"}
        await api.wait_watches(1)
        api.put_secret("kube-system", "new", tls(ca, "ks.test", with_ca=False))
        api.put_secret("c", "new", tls(ca, "c2.test", with_ca=False))
        r = await pub.until(lambda r: "c/new" in names(r))
        assert "kube-system/new" not in names(r)
    assert {c.namespace for c in api.calls} == {None}  # cluster-wide calls
    assert (
        api.calls[0].query["fieldSelector"]
        == "type=kubernetes.io/tls,metadata.namespace!=kube-system"
    )


async def test_label_selector_server_side(api: FakeKubeAPI, ca: trustme.CA) -> None:
    data = tls(ca, "x.test", with_ca=False)
    api.put_secret("ns", "web", data, labels={"team": "web", "tier": "prod"})
    api.put_secret("ns", "web-test", data, labels={"team": "web", "tier": "test"})
    api.put_secret("ns", "db", data, labels={"team": "db"})
    reader = make_reader(api, label_selector="team=web,tier!=test")
    async with watching(reader) as pub:
        r = await pub.until(lambda r: True)
        assert names(r) == {"ns/web"}
        await api.wait_watches(1)
        api.put_secret("ns", "web", data, labels={"team": "web", "tier": "test"})  # leaves
        r = await pub.until(lambda r: names(r) == set())
        api.put_secret("ns", "db", data, labels={"team": "web"})  # enters
        r = await pub.until(lambda r: names(r) == {"ns/db"})
    assert all(c.query["labelSelector"] == "team=web,tier!=test" for c in api.calls)


async def test_opaque_keys_and_configmaps(api: FakeKubeAPI, ca: trustme.CA) -> None:
    leaf = ca.issue_cert("opaque.test")
    der = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).public_bytes(Encoding.DER)
    api.put_secret(
        "ns",
        "bundle",
        {
            "bundle.pem": leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes(),
            "key.pem": leaf.private_key_pem.bytes(),  # matched by *.pem but no certificate
            "server.key": leaf.private_key_pem.bytes(),  # never read
            "notes.txt": b"hello",
        },
        type="Opaque",
    )
    api.put_secret("ns", "tls", tls(ca, "tls.test", with_ca=False))
    api.put_configmap("ns", "trust", {"ca.crt": ca.cert_pem.bytes().decode(), "readme": "x"})
    api.put_configmap("ns", "der", binary_data={"root.crt": der})
    reader = make_reader(api, opaque_keys=("*.pem",), configmaps=True)
    async with watching(reader) as pub:
        r = await pub.until(lambda r: True)
        assert {(c.location, c.position) for c in r.certs} == {
            ("ns/bundle#bundle.pem", 0),
            ("ns/bundle#bundle.pem", 1),
            ("ns/tls#tls.crt", 0),
            ("ns/tls#tls.crt", 1),
            ("configmap:ns/trust#ca.crt", 0),
            ("configmap:ns/der#root.crt", 0),
        }
        assert r.errors == ()
        await api.wait_watches(2)
        api.put_configmap("ns", "trust", {"ca.crt": leaf.cert_chain_pems[0].bytes().decode()})
        r = await pub.until(
            lambda r: any(
                c.location == "configmap:ns/trust#ca.crt" and c.facts.sans == ("opaque.test",)
                for c in r.certs
            )
        )
        api.delete("configmaps", "ns", "der")
        await pub.until(lambda r: "configmap:ns/der#root.crt" not in locations(r))
    resources = {c.resource for c in api.calls if c.verb == "list"}
    assert resources == {"secrets", "configmaps"}
    secret_list = next(c for c in api.calls if c.resource == "secrets")
    assert "fieldSelector" not in secret_list.query  # two types: filtered client side


async def test_cert_manager_and_mapped_labels(api: FakeKubeAPI, ca: trustme.CA) -> None:
    api.put_secret(
        "shop",
        "site-tls",
        tls(ca, "shop.test"),
        annotations={**CM_ISSUER, "example.com/owner": "team-shop"},
        labels={"app": "storefront"},
    )
    api.put_secret("shop", "manual", tls(ca, "manual.test"))
    reader = make_reader(
        api,
        labels_from_annotations=(("owner", "example.com/owner"),),
        labels_from_labels=(("app", "app"),),
        labels=(("cluster", "prod-eu"),),
    )
    result = await reader.refresh(None)
    by_name = {c.location.split("#")[0]: c.labels for c in result.certs}
    assert by_name["shop/site-tls"] == (
        ("app", "storefront"),
        ("certmanager_certificate", "shop/site"),
        ("certmanager_issuer", "ClusterIssuer/letsencrypt"),
        ("owner", "team-shop"),
        ("renewal", "cert-manager"),
    )
    assert by_name["shop/manual"] == ()
    assert result.labels == (("cluster", "prod-eu"),)


# --- bad data and secrets -------------------------------------------------------------------------


async def test_bad_data_is_reported_per_item(api: FakeKubeAPI, ca: trustme.CA) -> None:
    good = tls(ca, "good.test", with_ca=False)
    api.put_secret("ns", "good", good)
    api.put_secret("ns", "not-base64", raw_data={"tls.crt": "!!! not base64 !!!", "tls.key": ""})
    corrupt = b"-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n"
    api.put_secret("ns", "corrupt", {"tls.crt": corrupt + good["tls.crt"], "tls.key": b""})
    api.put_secret("ns", "junk", {"tls.crt": b"hello", "ca.crt": b"", "tls.key": b""})
    result = await make_reader(api).refresh(None)
    assert result.up
    assert {(e.location, e.reason) for e in result.errors} == {
        ("ns/not-base64#tls.crt", "corrupt_data"),
        ("ns/corrupt#tls.crt", "corrupt_pem"),
        ("ns/junk#tls.crt", "unknown_format"),
        ("ns/junk#ca.crt", "no_certificate"),
    }
    assert {(c.location, c.position) for c in result.certs} == {
        ("ns/good#tls.crt", 0),
        ("ns/good#tls.crt", 1),
        ("ns/corrupt#tls.crt", 1),  # the rest of the bundle is still read
        ("ns/corrupt#tls.crt", 2),
    }
    text = "".join(line for lines in source_fragments(result).values() for line in lines)
    assert (
        'certscope_source_item_errors{source_kind="kubernetes",source="cluster",reason="corrupt_data"} 1'
        in text
    )


async def test_private_keys_never_reach_results_or_logs(
    api: FakeKubeAPI, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = tls(ca, "secret.test")
    key_pem = data["tls.key"]
    key_b64 = base64.b64encode(key_pem).decode()
    key_body = b"".join(key_pem.splitlines()[1:-1]).decode()
    api.put_secret("ns", "s", data)
    api.put_secret("ns", "opaque", {"tls.key": key_pem, "key.pem": key_pem}, type="Opaque")
    reader = make_reader(api, opaque_keys=("*",), configmaps=True)
    results = [await reader.refresh(None)]
    async with watching(reader) as pub:
        results.append(await pub.until(lambda r: True))
        await api.wait_watches(1)
        api.put_secret("ns", "s2", data)
        results.append(await pub.until(lambda r: "ns/s2" in names(r)))
    haystack = "\n".join(
        [
            *(repr(r) for r in results),
            *("".join(x for xs in source_fragments(r).values() for x in xs) for r in results),
            repr(vars(reader)),
            repr(reader._stores),
            caplog.text,
        ]
    )
    assert "secret.test" in haystack  # the certificate is there...
    for needle in (key_b64, key_body, key_body[:40], "PRIVATE KEY"):
        assert needle not in haystack  # ...its private key is not
    assert not any(
        "tls.key" in c.location or "key.pem" in c.location for r in results for c in r.certs
    )


# --- pieces ---------------------------------------------------------------------------------------


async def test_requests_are_paced_by_qps_after_a_burst(api: FakeKubeAPI, ca: trustme.CA) -> None:
    data = tls(ca, "paced.test", with_ca=False)
    for i in range(6):
        api.put_secret("ns", f"s{i}", data)
    # Pages of one: six list requests. A burst of 2 goes at once, the other 4 at 10 per second.
    reader = make_reader(api, page_size=1, qps=10, burst=2)
    began = time.monotonic()
    result = await reader.refresh(None)
    elapsed = time.monotonic() - began
    assert result.up, result.error
    assert api.count("list", "secrets") == 6
    assert elapsed >= 0.35  # 4 paced requests: 0.4 s, less the bucket's own drain
    fast = make_reader(api, page_size=1, qps=1000, burst=100)
    began = time.monotonic()
    assert (await fast.refresh(None)).up
    assert time.monotonic() - began < elapsed


def test_transport_errors_have_their_reasons() -> None:
    stream = Stream("secrets", "ns", "", "")
    cases = [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError("read"), "timeout"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),  # an OSError, not a timeout
        (aiohttp.ClientConnectionError("reset"), "unreachable"),
    ]
    for exc, reason in cases:
        err = transport_error(stream, exc, "list")
        assert err.reason == reason, exc
        assert err.message.startswith("secrets (namespace ns): ")


def test_backoff_and_retry_after() -> None:
    b = Backoff(1.0, 8.0)
    delays = [b.next() for _ in range(6)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1]) and all(d <= 8.0 for d in delays)
    assert delays[-1] >= 4.0
    assert b.next(retry_after=30) >= 30
    b.reset()
    assert b.next() <= 1.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("nonsense") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_fake_label_selector() -> None:
    sel = parse_label_selector("team=web,tier!=test,env in (prod, staging),!legacy,app")
    assert sel({"team": "web", "env": "prod", "app": "x"})
    assert not sel({"team": "web", "env": "dev", "app": "x"})
    assert not sel({"team": "web", "env": "prod", "app": "x", "legacy": "1"})
    with pytest.raises(ValueError, match="unable to parse"):
        parse_label_selector("team===web")


async def test_shards_split_the_secrets_without_overlap(api: FakeKubeAPI) -> None:
    ca = trustme.CA()
    for i in range(24):
        api.put_secret(f"ns{i % 3}", f"site{i}", tls(ca, f"site{i}.test"))
    whole = await make_reader(api).refresh(None)
    parts = [await make_reader(api, shard=(i, 3)).refresh(None) for i in range(3)]
    locations = [{c.location for c in p.certs} for p in parts]
    assert all(locations)  # every replica gets a share
    for i, a in enumerate(locations):
        for b in locations[i + 1 :]:
            assert not a & b
    assert set().union(*locations) == {c.location for c in whole.certs}
