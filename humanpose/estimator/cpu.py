"""What this CPU offers the nets, read at run time (``/proc/cpuinfo`` on Linux).

int8 kernels differ by CPU class: with VNNI (AVX512-VNNI, AVX-VNNI) or AMX the u8 x s8 products
accumulate in 32 bits; on AVX2 alone they pass through a saturating 16-bit intermediate, so
full-range int8 weights can overflow there (:mod:`.int8` uses 7-bit weights, and
:mod:`.int8_check` checks the export against fp32 on this CPU).  Elsewhere (macOS, Windows,
ARM) the flags are unknown and only the self-check tells.
"""
from __future__ import annotations

import functools
import platform

INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile",
              "avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", flags


def cpu_model() -> str:
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where they cannot be read)."""
    return _cpuinfo()[1]


def int8_kernel() -> str:
    """The int8 dot-product instructions onnxruntime can use here: "AMX", "AVX512-VNNI",
    "AVX-VNNI", "AVX2 (no VNNI)", "ARM" or "unknown"."""
    flags = cpu_flags()
    if "amx_int8" in flags:
        return "AMX"
    if "avx512_vnni" in flags:
        return "AVX512-VNNI"
    if "avx_vnni" in flags:
        return "AVX-VNNI"
    if "avx2" in flags:
        return "AVX2 (no VNNI)"
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "ARM"
    return "unknown"


def has_vnni() -> bool | None:
    """True with VNNI or AMX, False on x86 without them, None where the flags are unknown."""
    kernel = int8_kernel()
    return None if kernel in ("unknown", "ARM") else kernel != "AVX2 (no VNNI)"


def cpu_key() -> str:
    """What an int8 verdict depends on: the CPU model, its int8 flags, onnxruntime's version."""
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    flags = ",".join(f for f in INT8_FLAGS if f in cpu_flags())
    return f"{cpu_model()} | {flags or 'no flags read'} | onnxruntime {ort}"


def bf16_kernel() -> str | None:
    """The native bfloat16 matrix instructions here ("AMX-BF16", "AVX512-BF16"), or None: without
    them bf16 is emulated and slower than fp32 (the trainer's ``precision: bf16`` falls back)."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX-BF16"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def cpu_summary() -> dict:
    """For reports (bench, eval JSON, run.json): the CPU and its int8 path."""
    return {"model": cpu_model(), "int8_kernel": int8_kernel(), "vnni": has_vnni(),
            "amx": "amx_int8" in cpu_flags()}


def describe() -> str:
    """One line: "AMD EPYC (AVX512-VNNI)"."""
    return f"{cpu_model()} ({int8_kernel()})"
