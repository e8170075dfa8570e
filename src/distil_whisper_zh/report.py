"""report.json, report.md and plots for `dwz evaluate`, rewritten after every result (atomically)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def write_report_files(report_dir: Path, results: list[dict], meta: dict) -> None:
    report = {"results": results, **meta}
    _atomic_write(report_dir / "report.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    _atomic_write(report_dir / "report.md", markdown_report(report))
    plot_cer_vs_speed(results, report_dir / "cer_vs_speed.png")


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) or math.isinf(value) else f"{100 * value:.2f}%"


def _f1(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _reads(context: dict | None) -> str:
    """A model's audio context in words: Whisper's window, or each clip plus its margin (20-ms positions)."""
    return "30-s window" if not context else f"clip + {context['margin'] * 0.02:.2f} s"


def _edits(edits: dict | None) -> str:
    if edits is None:
        return "n/a"
    return f"{edits['substitutions']} / {edits['deletions']} / {edits['insertions']}"


def markdown_report(report: dict) -> str:
    lines = [
        "# Evaluation report",
        "",
        f"Device: {report['device']}; batch size {report['batch_size']}; decoding: "
        + ", ".join(f"{k}={v}" for k, v in report["decoding"].items())
        + f"; {report['date']}.",
        "",
        "| model | backend | reads | dataset | utterances | audio (s) | params | CER | CER (numerals) | S / D / I | "
        "RTF | speed-up | same text as first | Traditional | punct. F1 | looped | cut by token cap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['model']} | {r.get('backend', 'transformers')} | {_reads(r.get('audio_context'))} | "
            f"{r['dataset']} | {r['utterances']} | "
            f"{r['audio_seconds']:.1f} | {r['params']:,} | "
            f"{_percent(r['cer'])} | {_percent(r['cer_numerals'])} | {_edits(r.get('edits_numerals'))} | "
            f"{r['rtf']:.4f} | {r['speedup']:.2f}x | "
            f"{_percent(r.get('same_text_as_baseline'))} | "
            f"{_percent(r['traditional_share'])} | {_f1(r['punctuation_f1'])} | {r['looped']} | {r['hit_token_cap']} |"
        )
    lines += long_form_lines(report["results"])
    lines += [
        "",
        f"**CER normalisation:** {report['normalization']}.",
        "",
        f"**CER (numerals):** {report['normalization_numerals']}.",
        "",
        "RTF = the model's wall-clock seconds (encoder and generation, fallback re-decodes included; audio decoding "
        "and log-mel features are timed apart, `feature_seconds` in report.json, except for inputs a chunked model "
        "cuts, whose VAD and chunk features count as the model's) / audio seconds; speed-up = the "
        "first model's time on the same data in this run / this model's; reads = how much of each 30-s window the "
        "encoder reads (the model's dynamic audio context); S / D / I = the substituted, deleted and inserted "
        "characters behind CER (numerals); same text as first = share of "
        "raw hypotheses identical to the first model's (1.0 for speculative decoding: the text is the model's own). "
        "Traditional = share of raw "
        "hypotheses with Traditional-only characters; punct. F1 = punctuation marks placed as in the reference "
        "after aligning characters (only when references are punctuated).",
        "",
        "![CER vs speed](cer_vs_speed.png)",
        "",
    ]
    return "\n".join(lines)


def long_form_lines(results: list[dict]) -> list[str]:
    """The segment checks of recordings joined by --concat (none without)."""
    rows = [r for r in results if r.get("long_form")]
    if not rows:
        return []
    lines = [
        "",
        "Long-form (clips joined into recordings): segments out of order or past the end of the audio (recordings), "
        "joins between clips with a segment boundary within 1 s (and, as chance, mid-clip points that have one), "
        "and the longest stretch no segment covers. Segments from the model's timestamps, or from the chunks the VAD "
        "cut (--long-form chunked: then these checks describe the VAD, not the model).",
        "",
        "| model | backend | dataset | segments | recordings | out of order | past end | joins found | chance | "
        "uncovered (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["long_form"]
        lines.append(
            f"| {r['model']} | {r.get('backend', 'transformers')} | {r['dataset']} | "
            f"{t.get('segments_from', 'timestamps')} | {t['recordings']} | "
            f"{t['out_of_order']} | {t['past_end']} | {t['joins_found']}/{t['joins']} | "
            f"{t.get('decoys_found', 'n/a')}/{t['joins']} | {t['longest_silence']:.1f} |"
        )
    return lines


def plot_cer_vs_speed(results: list[dict], path: Path) -> None:
    """CER against real-time factor, one point per model and dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset and math.isfinite(r["cer"])]
        axes.scatter([r["rtf"] for r in rows], [100 * r["cer"] for r in rows], label=dataset)
        for r in rows:
            axes.annotate(r["model"], (r["rtf"], 100 * r["cer"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel("real-time factor (lower is faster)")
    axes.set_ylabel("CER (%)")
    axes.set_title("CER vs speed")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
