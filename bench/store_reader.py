"""The reader process of the store benchmark (``bench/store_bench.py`` starts it with
``--child``): a ``KubernetesReader.watch`` with production settings and, optionally, a
``FilesReader``, measured from the inside. It reports its first sync, then answers one JSON
command a line on stdin with one JSON event a line on stdout (``steady``, ``round``, ``arm``,
``relisted``, ``files``, ``quit``).

It imports only what it measures: its own memory at start is part of the figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from _harness import cpu_self, proc_status
from certscope.config import FilesSource, KubernetesSource
from certscope.results import SourceResult
from certscope.sources.files import FilesReader
from certscope.sources.kubernetes import KubernetesReader


def send(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def secrets_in(r: SourceResult) -> int:
    return len({c.location.split("#")[0] for c in r.certs})


class Reader:
    """The watch, what it last published, and the measurements the commands ask for."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        source = KubernetesSource(
            name="bench",
            kubeconfig=cfg["kubeconfig"],
            labels_from_labels=(("round", "bench/round"),),
        )
        self.reader = KubernetesReader(source)
        self.files = (
            FilesReader(FilesSource(name="disk", paths=(cfg["files_glob"],)))
            if cfg["files"]
            else None
        )
        self.latest: list[SourceResult] = []
        self.changed = asyncio.Event()
        self.publishes = 0
        self.armed = (0, 0.0, 0.0)  # publishes, CPU and wall time when ``arm`` came

    def publish(self, result: SourceResult) -> None:
        self.latest[:] = [result]
        self.publishes += 1
        self.changed.set()

    async def until(
        self, pred: Callable[[SourceResult], bool], limit: float = 600.0
    ) -> SourceResult:
        deadline = time.monotonic() + limit
        while True:
            if self.latest and pred(self.latest[0]):
                return self.latest[0]
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.1, deadline - time.monotonic()))

    async def first_sync(self, start_rss: float, imported_rss: float) -> None:
        cpu0, t0 = cpu_self(), time.perf_counter()
        files_done: list[float] = []
        files_result: list[SourceResult] = []

        async def read_files() -> None:
            if self.files is not None:
                files_result.append(await self.files.refresh(None))
            files_done.append(time.perf_counter() - t0)

        files_task = asyncio.create_task(read_files())
        first = await self.until(lambda r: r.up and secrets_in(r) >= self.cfg["secrets"])
        t_k8s = time.perf_counter() - t0
        await files_task
        t_total = time.perf_counter() - t0
        # Only numbers are kept: holding a published result would pin its certificates.
        k8s_certs, k8s_secrets = len(first.certs), secrets_in(first)
        files_certs = len(files_result[0].certs) if files_result else 0
        del first
        files_result.clear()
        gc.collect()
        status = proc_status()
        send(
            {
                "event": "synced",
                "rss_start_mib": start_rss,
                "rss_imported_mib": imported_rss,
                "first_sync_kubernetes_s": t_k8s,
                "first_sync_files_s": files_done[0],
                "first_sync_total_s": t_total,
                "first_sync_cpu_s": cpu_self() - cpu0,
                "kubernetes_certs": k8s_certs,
                "kubernetes_secrets": k8s_secrets,
                "files_certs": files_certs,
                "rss_synced_mib": status["VmRSS"],
                "hwm_synced_mib": status["VmHWM"],
            }
        )

    async def steady(self, cmd: dict[str, Any]) -> None:
        before_pub, c0, w0 = self.publishes, cpu_self(), time.perf_counter()
        await asyncio.sleep(cmd["seconds"])
        send(
            {
                "event": "steady",
                "seconds": time.perf_counter() - w0,
                "cpu_s": cpu_self() - c0,
                "publishes": self.publishes - before_pub,
                "rss_mib": proc_status()["VmRSS"],
            }
        )

    async def round(self, cmd: dict[str, Any]) -> None:
        want, expect = str(cmd["round"]), int(cmd["expect"])

        def done(r: SourceResult) -> bool:
            marked = {c.location.split("#")[0] for c in r.certs if ("round", want) in c.labels}
            return len(marked) >= expect

        before_pub = self.publishes
        await self.until(done)
        done_at = time.monotonic()
        gc.collect()
        send(
            {
                "event": "round",
                "done_at": done_at,
                "publishes": self.publishes - before_pub,
                "rss_mib": proc_status()["VmRSS"],
                "live_objects": len(gc.get_objects()),
            }
        )

    async def arm(self, cmd: dict[str, Any]) -> None:
        self.armed = (self.publishes, cpu_self(), time.perf_counter())
        send({"event": "armed"})

    async def relisted(self, cmd: dict[str, Any]) -> None:
        since, cpu0, wall0 = self.armed
        await self.until(lambda r: self.publishes > since)
        send(
            {
                "event": "relisted",
                "seconds": time.perf_counter() - wall0,
                "cpu_s": cpu_self() - cpu0,
                "secrets": secrets_in(self.latest[0]),
            }
        )

    async def refresh_files(self, cmd: dict[str, Any]) -> None:
        c0, w0 = cpu_self(), time.perf_counter()
        result = await self.files.refresh(None) if self.files else None
        send(
            {
                "event": "files",
                "seconds": time.perf_counter() - w0,
                "cpu_s": cpu_self() - c0,
                "certs": len(result.certs) if result else 0,
            }
        )


def final() -> None:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    status = proc_status()
    send(
        {
            "event": "final",
            "rss_mib": status["VmRSS"],
            "hwm_mib": status["VmHWM"],
            "ru_maxrss_mib": ru.ru_maxrss / 1024,
            "cpu_total_s": cpu_self(),
        }
    )


async def run(cfg: dict[str, Any], start_rss: float) -> None:
    """``start_rss``: measured by the caller before it imported this module."""
    import kubernetes_asyncio.client  # noqa: F401 - imported now so its cost is seen apart

    reader = Reader(cfg)
    imported = proc_status()["VmRSS"]
    watch = asyncio.create_task(reader.reader.watch(reader.publish))
    await reader.first_sync(start_rss, imported)
    commands = {
        "steady": reader.steady,
        "round": reader.round,
        "arm": reader.arm,
        "relisted": reader.relisted,
        "files": reader.refresh_files,
    }
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            final()
            break
        await commands[cmd["cmd"]](cmd)
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
