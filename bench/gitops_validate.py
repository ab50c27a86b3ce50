"""Benchmark ``certs-gitops validate`` on large trees: is it linear in the number of entries?

    python bench/gitops_validate.py [--sizes 4000,20000,100000] [--with-csrs 4000]

Two shapes of tree, each validated in-process (``gitops.commands.validate``, the command's own
code) after it is written to a temporary folder:
- ``entries``: a tls.json of N entries whose CSRs are absent, so every entry is a finding
  (``CsrMissing``) and every finding needs its line and column;
- ``with_csrs``: N entries, each with its own real CSR (a fresh P-256 key), all valid.
Prints one line per run on stderr, then ONE line of JSON on stdout with every figure (seconds
per size and the microseconds per entry, whose flatness across sizes is what "linear" means).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitops import commands  # noqa: E402


def entry(index: int) -> dict[str, object]:
    return {
        "common_name": f"partner-{index}.example.com",
        "organization": "Example Partner Ltd",
        "sans": [f"partner-{index}.example.com", f"api.partner-{index}.example.com"],
        "purposes": ["client_auth"],
        "lifetime": 90,
        "csr_file": f"partner-{index}.csr",
    }


def csr(common_name: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def make_tree(root: Path, size: int, with_csrs: bool) -> None:
    env = root / "dev"
    (env / "csrs").mkdir(parents=True)
    entries = [entry(i) for i in range(size)]
    (env / "tls.json").write_text(json.dumps(entries, indent=2) + "\n")
    (env / "revoked.json").write_text("[]\n")
    if with_csrs:
        for i, item in enumerate(entries):
            (env / "csrs" / f"partner-{i}.csr").write_bytes(csr(str(item["common_name"])))


def measure(size: int, with_csrs: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as tmp:
        root = Path(tmp) / "certs"
        make_tree(root, size, with_csrs)
        started = time.perf_counter()
        code, text = commands.validate(root, ["dev"], "json")
        seconds = time.perf_counter() - started
    problems = len(json.loads(text)["problems"])
    return seconds, problems


def _report(label: str, size: int, seconds: float, problems: int) -> None:
    print(
        f"{label}: {seconds:8.2f} s  {problems} findings  {seconds / size * 1e6:8.1f} us/entry",
        file=sys.stderr,
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4000,20000,100000", help="entries per run (comma list)")
    parser.add_argument(
        "--with-csrs", type=int, default=4000, help="entries of the CSR run (0: skip)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(not 1 <= s <= 200_000 for s in sizes) or not 0 <= args.with_csrs <= 50_000:
        parser.error("sizes must be 1..200000 entries, --with-csrs 0..50000")
    figures: dict[str, object] = {"bench": "gitops_validate"}
    for size in sizes:
        seconds, problems = measure(size, with_csrs=False)
        _report(f"entries {size:>7}", size, seconds, problems)
        figures[f"entries_{size}_s"] = round(seconds, 3)
        figures[f"entries_{size}_us_per_entry"] = round(seconds / size * 1e6, 1)
    if args.with_csrs:
        seconds, problems = measure(args.with_csrs, with_csrs=True)
        _report(f"with CSRs {args.with_csrs:>5}", args.with_csrs, seconds, problems)
        figures[f"with_csrs_{args.with_csrs}_s"] = round(seconds, 3)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
