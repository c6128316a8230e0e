"""What every part of the batch transform shares: its error, its file names and format, and
the shard a worker scores (`I/N`)."""

from __future__ import annotations

from dataclasses import dataclass

from modelship.errors import ModelshipError

MANIFEST = "_manifest.json"


SHARDS_DIR = "_shards"


FORMAT = "modelship-batch-transform/1"


CSV_SUFFIXES = (".csv", ".csv.gz")


# gzip input is fed to the decompressor in blocks of this many compressed bytes; a line belongs
# to the block it starts in. Changing it changes which shard owns which line, hence in FORMAT.
GZIP_BLOCK_BYTES = 2**20


# and inflated at most this many bytes at a time (the cut does not depend on it).
GZIP_OUT_BYTES = 2**20


LINE_BREAK = b"\n"


class TransformError(ModelshipError):
    """The input, the output or the shard cannot be used as asked: says which and why."""

    error_type = "transform_error"
    exit_code = 2


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"


WHOLE = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """`I/N`: the I-th (from 0) of N shards."""
    index, _, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = Shard(-1, 0)
    if not 0 <= shard.index < shard.count <= 10_000:
        raise TransformError(
            f"--shard {text!r}: expected I/N with 0 <= I < N <= 10000, e.g. 0/4 "
            "(on Kubernetes: $JOB_COMPLETION_INDEX/N)"
        )
    return shard
