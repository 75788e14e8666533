"""How many allocation certificates one core can issue with ``buildkit_controller.core.pki``.

Run from the repository root (about 30 s with the defaults)::

    .venv/bin/python benchmarks/bench_certs.py --rounds 5 --seconds 2 --json bench-certs.json

Cases, run round-robin so that noise on a shared machine hits every case alike:

``allocation-issue``
    the server-side key path of ``POST /api/v1/workers/allocate``: a new allocation id, P-256 key
    generation, the full leaf template signed by the tenant CA, PEM of the certificate and the PKCS#8
    key (``pki.issue_allocation_certificate``).
``csr-sign``
    the client-key path: parse a PEM CSR, check its signature and key, issue, PEM (``pki.sign_csr``).
``baseline``
    bare ``cryptography`` for reference: P-256 keygen, a certificate with only a CN and no
    extensions, ECDSA-SHA256 signature, PEM of certificate and key.

Prints per case the median of the per-round ops/s, p50/p99 latency over all operations, and the
median of per-round ratios to ``baseline``; then ``PASS`` or ``FAIL``: whether the median
``allocation-issue`` rate reaches ``--floor`` (default 2,000/s; the research measured about 3,500/s
for the same work). Exit status 1 on FAIL. Single-threaded, pinned to one CPU where the OS allows it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from buildkit_controller.core import pki
from buildkit_controller.core.tokens import new_allocation_id

LIFETIME = dt.timedelta(hours=1)
BASELINE = "baseline"


@dataclass
class CaseResult:
    """Per-round rates and every operation's duration for one case."""

    rates: list[float] = field(default_factory=list)
    durations_ns: list[int] = field(default_factory=list)


def make_cases() -> dict[str, Callable[[], object]]:
    """Build the three cases around one tenant CA and one client CSR, as the API would hold them."""
    ca = pki.create_ca("bench/pool tenant CA", lifetime=dt.timedelta(days=365))
    client_key = ec.generate_private_key(ec.SECP256R1())
    csr_pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ci-job")]))
        .sign(client_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )

    def allocation_issue() -> tuple[bytes, bytes | None]:
        identity = pki.AllocationIdentity(
            allocation_id=new_allocation_id(), pool="pool", namespace="ci", job_id="build-1234"
        )
        issued = pki.issue_allocation_certificate(ca, identity, lifetime=LIFETIME)
        return issued.certificate_pem, issued.private_key_pem

    def csr_sign() -> bytes:
        identity = pki.AllocationIdentity(allocation_id=new_allocation_id(), pool="pool", namespace="ci")
        return pki.sign_csr(ca, csr_pem, identity, lifetime=LIFETIME).certificate_pem

    def baseline() -> tuple[bytes, bytes]:
        return bare_issue(ca.certificate, ca.private_key)

    return {"allocation-issue": allocation_issue, "csr-sign": csr_sign, BASELINE: baseline}


def bare_issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """The least work a P-256 client certificate can take with ``cryptography``: the reference."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "baseline")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + LIFETIME)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def run_for(fn: Callable[[], object], seconds: float, result: CaseResult) -> None:
    """Call ``fn`` back to back for ``seconds`` (at least 5 times); record the rate and durations."""
    gc.collect()
    durations: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    while clock() < deadline or len(durations) < 5:
        start = clock()
        fn()
        durations.append(clock() - start)
    result.rates.append(len(durations) / (sum(durations) / 1e9))
    result.durations_ns.extend(durations)


def pin_to_one_cpu(cpu: int | None) -> int | None:
    """Pin this process to one CPU (the last allowed one by default); None where the OS cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    chosen = cpu if cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {chosen})
    return chosen


def percentile_us(durations_ns: list[int], fraction: float) -> float:
    ordered = sorted(durations_ns)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1e3


def summarize(results: dict[str, CaseResult]) -> dict[str, dict[str, object]]:
    """Median rates, p50/p99 latencies and median per-round ratios to the baseline."""
    base = results[BASELINE].rates
    return {
        name: {
            "ops_per_s_median": statistics.median(r.rates),
            "ops_per_s_rounds": [round(rate, 1) for rate in r.rates],
            "p50_us": percentile_us(r.durations_ns, 0.50),
            "p99_us": percentile_us(r.durations_ns, 0.99),
            "ratio_to_baseline": statistics.median(x / y for x, y in zip(r.rates, base, strict=True)),
            "operations": len(r.durations_ns),
        }
        for name, r in results.items()
    }


def print_table(summary: dict[str, dict[str, object]]) -> None:
    print(
        f"{'case':18} {'ops/s (median)':>15} {'min..max':>17} {'p50 us':>8} {'p99 us':>8} {'x baseline':>11}"
    )
    for name, row in summary.items():
        rounds = row["ops_per_s_rounds"]
        assert isinstance(rounds, list)
        spread = f"{min(rounds):.0f}..{max(rounds):.0f}"
        print(
            f"{name:18} {row['ops_per_s_median']:15.0f} {spread:>17} {row['p50_us']:8.0f} "
            f"{row['p99_us']:8.0f} {row['ratio_to_baseline']:11.3f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per case per round (2)")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds (5)")
    parser.add_argument("--floor", type=float, default=2000.0, help="PASS floor, allocation-issue ops/s")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (last allowed one)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_to_one_cpu(args.cpu)
    cases = make_cases()
    for fn in cases.values():  # warm-up: first calls pay for imports and caches
        run_for(fn, 0.2, CaseResult())
    results = {name: CaseResult() for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            run_for(fn, args.seconds, results[name])
    summary = summarize(results)
    rate = summary["allocation-issue"]["ops_per_s_median"]
    assert isinstance(rate, float)
    passed = rate >= args.floor
    print(
        f"# python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"cpu {cpu if cpu is not None else 'unpinned'}, {args.rounds} rounds x {args.seconds} s per case"
    )
    print_table(summary)
    if args.json:
        environment = {
            "python": platform.python_version(),
            "cryptography": cryptography.__version__,
            "cpu": cpu,
        }
        report = {**environment, "rounds": args.rounds, "seconds": args.seconds, "floor": args.floor}
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({**report, "cases": summary, "pass": passed}, out, indent=2)
    print(
        f"{'PASS' if passed else 'FAIL'}: allocation-issue {rate:.0f}/s against a floor of {args.floor:.0f}/s"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
