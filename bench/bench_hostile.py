"""Hostile data: profile understanding of huge bios, and the memory of the largest archive.

1. Profile understanding (``handlers.profiles.understand``) of 1 KB, 64 KB and 1 MB
   bios, both as every caller gets it (capped to the documented 5,000 characters before
   it is read) and with the cap taken away, to show the algorithm itself is linear.
   Two bios: ordinary text, and the old worst case (a role in every clause, which was
   quadratic). Baseline, same run: one plain regex pass (``\\w+``) over the same bio.
2. The largest X archive ``plnbot import x-archive`` accepts (one follower.js of
   ``MAX_MEMBER_BYTES`` uncompressed, about a million followers): read and checked (all
   an import does before its first write) in a fresh process, whose peak memory is the
   figure; and a whole import (read and stored on SQLite) of a 16 MB slice. Baseline,
   same run: a process that only ``json.loads`` the same file.

``python -m bench.bench_hostile [--quick]`` (quick: 8 MB and 2 MB archives); writes
bench/results/hostile.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import regex

from bench.common import parse_args, report
from bot.adapters.x_archive import MAX_MEMBER_BYTES
from bot.events import Profile
from handlers import profiles

SIZES = {"1KB": 1_000, "64KB": 64_000, "1MB": 1_000_000}
TEXTS = {
    "ordinary": "Year 5 teacher at Riverside Primary School, Leeds. Ex-headteacher. #edtech "
                "Desmos fan, blogging at https://amara.blog about maths and reading. ",
    "a_role_per_clause": "teacher. ",
}
WORD = regex.compile(r"\w+")
ENTRY_BYTES = 133  # one follower entry in X's indented format


def bio_of(text: str, size: int) -> str:
    return (text * (size // len(text) + 1))[:size]


def best_of(func, repeat: int = 3) -> float:
    """Fastest of ``repeat`` runs, in milliseconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def understanding_figures(quick: bool) -> dict[str, float]:
    profiles.understand(Profile(platform="x", external_id="0", handle="warm", bio="teacher"))
    figures: dict[str, float] = {}
    capped_bounded = profiles.bounded
    for name, text in TEXTS.items():
        for label, size in SIZES.items():
            bio = bio_of(text, size)
            person = Profile(platform="mastodon", external_id="1", handle="p", bio=bio)
            baseline = best_of(lambda bio=bio: WORD.findall(bio))
            capped = best_of(lambda person=person: profiles.understand(person))
            figures[f"{name}_{label}_capped_ms"] = round(capped, 2)
            if quick and size > 64_000:
                continue
            profiles.bounded = lambda profile: profile  # the algorithm on its own
            try:
                uncapped = best_of(lambda person=person: profiles.understand(person),
                                   repeat=1 if size > 64_000 else 3)
            finally:
                profiles.bounded = capped_bounded
            figures[f"{name}_{label}_uncapped_ms"] = round(uncapped, 2)
            figures[f"{name}_{label}_regex_baseline_ms"] = round(baseline, 3)
            figures[f"{name}_{label}_uncapped_per_kb_ms"] = round(uncapped / (size / 1000), 3)
            figures[f"{name}_{label}_uncapped_vs_regex"] = round(uncapped / baseline)
    return figures


def write_archive(path: Path, budget: int) -> int:
    """A follower.js just under ``budget`` bytes, streamed into the zip (never whole)."""
    people, written = 0, 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("data/follower.js", "w", force_zip64=True) as member:
        written += member.write(b"window.YTD.follower.part0 = [")
        while written < budget - 20_000:
            ids = range(10**12 + people, 10**12 + people + 100)
            chunk = ",".join(json.dumps({"follower": {
                "accountId": str(i), "userLink": f"https://twitter.com/intent/user?user_id={i}"}},
                indent=2, separators=(",", " : ")) for i in ids)
            written += member.write(((", " if people else "") + chunk).encode())
            people += len(ids)
        member.write(b"]")
    return people


IMPORT = """
import asyncio, resource, sys, time
from bot.adapters.x_archive import read_archive
from bot.app import App, open_database
from bot.config import Settings
class NullSurface:
    async def send(self, message): return None
settings = Settings(_env_file=None)
app = App(settings=settings, engine=open_database(settings, sys.argv[2]), surface=NullSurface())
start = time.perf_counter()
asyncio.run(app.handle(read_archive(sys.argv[1]).event("local")))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
READ_ONLY = """
import resource, sys, time
from bot.adapters.x_archive import read_archive
start = time.perf_counter()
archive = read_archive(sys.argv[1])
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
PARSE_ONLY = """
import json, resource, sys, time, zipfile
start = time.perf_counter()
with zipfile.ZipFile(sys.argv[1]) as archive:
    entries = json.loads(archive.read("data/follower.js").decode().split("=", 1)[1])
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def in_child(code: str, *args: str) -> tuple[float, float]:
    output = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            check=True).stdout.split()
    return float(output[0]), float(output[1])


def archive_figures(quick: bool) -> dict[str, float]:
    """Reading and checking the largest archive allowed (everything an import does before
    its first write), and a whole import (read and stored) of a slice of it."""
    largest = 8 * 2**20 if quick else MAX_MEMBER_BYTES
    stored = 2 * 2**20 if quick else 16 * 2**20
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, budget, code in (("largest", largest, READ_ONLY), ("slice", stored, IMPORT)):
            path = Path(tmp) / f"{label}.zip"
            people = write_archive(path, budget)
            baseline_s, baseline_mb = in_child(PARSE_ONLY, str(path))
            seconds, peak = in_child(code, str(path), f"sqlite:///{Path(tmp) / 'b.db'}")
            what = "read_and_check" if code is READ_ONLY else "import"
            figures.update({
                f"{label}_archive_mb": round(budget / 2**20), f"{label}_people": people,
                f"{label}_{what}_s": round(seconds, 1), f"{label}_{what}_peak_rss_mb": round(peak),
                f"{label}_json_loads_only_s": round(baseline_s, 1),
                f"{label}_json_loads_only_peak_rss_mb": round(baseline_mb),
                f"{label}_memory_vs_json_loads": round(peak / baseline_mb, 1)})
    return figures


def main() -> None:
    quick = parse_args(__doc__.splitlines()[0]).quick
    figures = understanding_figures(quick)
    figures.update(archive_figures(quick))
    report("hostile", figures)


if __name__ == "__main__":
    main()
