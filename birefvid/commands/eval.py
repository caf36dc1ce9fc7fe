"""``birefvid eval PRED GT``: score predicted masks or alpha against ground truth, accuracy and flicker."""

from __future__ import annotations

import argparse
from typing import Optional

HELP = "score predictions (alpha/mask video or image folder) against ground-truth masks: accuracy and temporal stability"

# (result key, column header); the order of the table
COLUMNS = (
    ("s_measure", "S"),
    ("e_measure", "E"),
    ("weighted_f", "wF"),
    ("max_f", "maxF"),
    ("mae", "MAE"),
    ("iou", "IoU"),
    ("boundary_iou", "bIoU"),
    ("boundary_f", "bF"),
    ("j_and_f", "J&F"),
    ("dtssd", "dtSSD"),
    ("flicker", "flicker"),
)
LEGEND = (
    "higher is better: S, E (mean E), wF, maxF (pysodmetrics), IoU (DAVIS J), bIoU (boundary IoU, band 2% of\n"
    "  the diagonal), bF (DAVIS boundary F-measure, the F of J&F), J&F = (IoU + bF) / 2\n"
    "lower is better: MAE, dtSSD, flicker, in alpha units 0-1 (RVM tables show dtSSD x100)\n"
    "mean: each sequence counts once (DAVIS' J&F Mean); all: each frame counts once"
)
# the matting measures at the scales of RVM's tables (VideoMatte240K), under the names they have there
MATTING_COLUMNS = (
    ("rvm_mad", "MAD"),
    ("rvm_mse", "MSE"),
    ("grad", "Grad"),
    ("conn", "Conn"),
    ("rvm_dtssd", "dtSSD"),
)
MATTING_TITLE = "matting, at the scales of RVM's tables (lower is better):"
MATTING_LEGEND = (
    "MAD, MSE x1000; Grad, Conn: sums over the frame / 1000, so they grow with its size;\n"
    "dtSSD x100, averaged over every frame with 0 for each clip's first"
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predictions: alpha or mask video, folder or glob of mask images, "
                        "or (with a DAVIS-style GT) a folder of per-sequence folders/videos")
    parser.add_argument("gt", metavar="GT", help="ground truth: folder or glob of masks, a mask video, "
                        "or a folder of sequence folders or videos (DAVIS Annotations layout, VideoMatte240K test/pha)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': print JSON instead of the table)")
    parser.add_argument("--per-frame", action="store_true", help="list every frame's values too (table and JSON)")
    parser.add_argument("--sequences", metavar="FILE|A,B", help="with a DAVIS-style GT, score only these sequences: "
                        "a file of one name per line (DAVIS ImageSets/2017/val.txt) or names separated by commas")
    parser.add_argument("--threshold", type=float, default=0.5, help="binarize predictions here for IoU, boundary IoU and boundary F (default 0.5)")
    parser.add_argument("-q", "--quiet", action="store_true", help="the table without its legend lines (errors and warnings still shown)")
    parser.set_defaults(run=run)


def _cell(value: Optional[float]) -> str:
    """A table cell: four decimals, or '-' where the metric has no value (one frame: no temporal pairs)."""
    return "-" if value is None else f"{value:.4f}"


def format_table(report: dict, legend: bool = True) -> str:
    """The report as text: a table of per-frame rows (if any), per-sequence rows and their mean (if any),
    then 'all'; and the same rows' matting measures at RVM's scales. ``legend`` False (``-q``): the rows alone,
    without the lines saying what the columns mean."""
    rows: list[tuple[str, dict]] = []
    for rec in report.get("per_frame", []):
        label = f"{rec['sequence']}/{rec['frame']}" if "sequence" in rec else str(rec["frame"])
        rows.append((label, {**rec, "frames": 1}))
    rows += list(report.get("sequences", {}).items())
    if "sequence_mean" in report:
        rows.append(("mean", report["sequence_mean"]))
    rows.append(("all", report["summary"]))
    lines = [f"{report['predictions']} vs {report['ground_truth']}", *_block(rows, COLUMNS), *([LEGEND] if legend else [])]
    if any(key in report["summary"] for key, _ in MATTING_COLUMNS):
        lines += ["", MATTING_TITLE, *_block(rows, MATTING_COLUMNS), *([MATTING_LEGEND] if legend else [])]
    return "\n".join(lines)


def _block(rows: list[tuple[str, dict]], columns: tuple[tuple[str, str], ...]) -> list[str]:
    """A header line and one line per row: label, frame count, then ``columns``."""
    width = max(len(label) for label, _ in rows)
    cells = [[_cell(values.get(key)) for key, _ in columns] for _, values in rows]
    sizes = [max(7, len(title), *(len(row[i]) for row in cells)) for i, (_, title) in enumerate(columns)]
    lines = [f"{'':<{width}} {'frames':>6} " + " ".join(f"{title:>{n}}" for (_, title), n in zip(columns, sizes))]
    for (label, values), row in zip(rows, cells):
        lines.append(f"{label:<{width}} {int(values['frames']):>6} " + " ".join(f"{c:>{n}}" for c, n in zip(row, sizes)))
    return lines


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..file_names import leads_to_standard_output
    from ..io.atomic import check_output_file, check_report_replaces_nothing, write_text_atomic

    if not 0.0 < args.threshold <= 1.0:
        raise ConfigError(f"--threshold {args.threshold} must be in (0, 1]")
    from ..eval.readers import evaluate_paths, sequence_names  # PyAV, OpenCV, torch: after the check above, which needs none

    sequences = sequence_names(args.sequences) if args.sequences is not None else None
    if args.json and args.json != "-":  # before the scoring, not after minutes of it
        if leads_to_standard_output(args.json):  # `--json /dev/stdout | jq`: the JSON, then the table; `> r.json`: the
            # scores renamed onto the file standard output writes, the table lost with the old one
            raise ConfigError(f"--json {args.json} is where standard output goes, and eval prints its table there; "
                              "use --json - for the JSON alone, or name another file")
        check_output_file(args.json, "--json")
        check_report_replaces_nothing(args.json, "--json", [args.pred, args.gt])  # the scores replaced the predictions
    report = evaluate_paths(args.pred, args.gt, threshold=args.threshold, per_frame=args.per_frame, sequences=sequences)
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
        return 0
    if args.json:  # whole or not at all: a script reads it
        write_text_atomic(args.json, text + "\n", "--json")
    print(format_table(report, legend=not args.quiet))
    return 0
