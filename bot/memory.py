"""Process-wide memory settings of the server."""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

# The `param` number of M_ARENA_MAX in glibc's malloc.h.
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def is_glibc() -> bool:
    """Tell whether this process runs on glibc, which alone has M_ARENA_MAX."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):
        return False


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the server starts its threads; return whether the cap was set.

    glibc gives threads that allocate at the same time separate arenas, up to 8 per core, and
    memory freed in one arena serves only later allocations from that arena. The request
    bodies, payloads and query results that the server's threads allocate are mostly larger
    than 512 bytes, so they bypass pymalloc and land in those arenas. The load measured
    was like bench/ingest_bench.py's throughput phase (9,000 deliveries over 32 connections,
    then the drain) on a 2-core VM. In three runs each, the peak RSS was 120-122 MB with glibc's
    default (5 arenas in use) and 111-116 MB with two.

    Nothing is changed on other C libraries, or when MALLOC_ARENA_MAX, which glibc reads at
    process start, is set in the environment.
    """
    if not is_glibc() or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    if mallopt(M_ARENA_MAX, arenas) != 1:
        logger.warning("mallopt(M_ARENA_MAX, %d) failed; glibc keeps its default arenas", arenas)
        return False
    return True
