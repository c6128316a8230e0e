"""Batch transform: score a CSV of any size (or a prefix of CSVs) from a path or a bucket.

Input: a file, a directory or an `s3://` / `gs://` / `file://` object or prefix; `.gz` files
are decompressed on the fly. It is read as a stream and scored in chunks by
`modelship.serving.scoring.predict_csv`, so memory stays bounded whatever the size.

Output, under a prefix:
  part-<shard>-of-<shards>-<file>.csv   the input rows in order, prediction column(s) appended
  rejects-<shard>-of-<shards>-<file>.csv  rows left out under `--on-error skip`, with the reason
  _shards/<shard>-of-<shards>.json       one shard's manifest, written after its parts
  _manifest.json                         written last, once every shard's manifest is there

Shards: the input's bytes (all files end to end) are cut into N equal ranges; a row belongs to
the shard whose range holds the row's first byte, so the N shards cover every row exactly once
and shard I's rows all precede shard I+1's. A gzip file cannot be entered in the middle: every
shard decompresses it from the start and keeps the lines that begin in a block of compressed
bytes inside its range (the block a line starts in is the same for every reader). A shard
re-run writes the same keys again: each object is replaced atomically, never duplicated.
A quoted field holding a line break cannot be found from the middle of a file, so a sharded
run refuses any line with an unbalanced quote; an unsharded run reads such files as usual."""

from modelship.transform.base import (
    MANIFEST,
    WHOLE,
    Shard,
    TransformError,
    parse_shard,
)
from modelship.transform.inputs import Input, open_input, read_segment, segments
from modelship.transform.outputs import RejectsWriter, file_writer, open_output
from modelship.transform.shards import (
    ShardRun,
    load_model,
    merge,
    model_record,
    predict_whole_file,
    run_shard,
    try_merge,
    warnings_summary,
)

__all__ = [
    "MANIFEST",
    "WHOLE",
    "Input",
    "RejectsWriter",
    "Shard",
    "ShardRun",
    "TransformError",
    "file_writer",
    "load_model",
    "merge",
    "model_record",
    "open_input",
    "open_output",
    "parse_shard",
    "predict_whole_file",
    "read_segment",
    "run_shard",
    "segments",
    "try_merge",
    "warnings_summary",
]
