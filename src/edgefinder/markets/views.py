"""Everything the futures pipeline prints: one module that the CLI, the demo and the phases' console
arguments use, so the phases compute and this module shows.

Phases 2–3's live dashboard (:class:`RunDashboard`, driven by the orchestrator's events) and run
summary (:func:`print_run_summary`); blocks in the original layout (:func:`print_block`), the forward pass's day lines and final report,
the paper trade's block, and the Phase 5 report (tiers, ancestry and context comparisons, the
meta-label gate, families, how each production entry qualified). Money in dollars per contract.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.markets.checkpoints import PLAYBOOK_PKL
from edgefinder.markets.summary import (
    NO_ROOT,
    STATUS_PENDING,
    TIER_NAMES,
    ancestry_table,
    fmt_epoch,
    money,
    power_text,
)
from edgefinder.settings import setting_default

__all__ = [
    "PHASE_TITLES",
    "RunDashboard",
    "print_block",
    "print_day",
    "print_forward_report",
    "print_paper_trade",
    "print_report",
    "print_run_summary",
    "session_progress",
]

#: Phases 2–3 in order, with the names the dashboard and the run summary show.
PHASE_TITLES = {
    "discovery": "Phase 2 — discovery",
    "clustering": "Phase 2.5 — clustering",
    "playbook": "Phase 3 — playbook",
}


def print_block(console: Console, title: str, b: dict, *, brain: bool = True) -> None:
    """Print one block in the original layout (``brain=False`` leaves out the brain coverage line)."""
    console.print(f"\n[bold]=== {title} ===[/bold]")
    console.print(f"Days: {b['days']}")
    console.print(f"Total trades: {b['total_trades']:,}")
    console.print(f"Win rate: {b['win_rate']:.1%}")
    console.print(f"Total PnL: {money(b['total_pnl'])}")
    console.print(
        f"Sharpe: {b['sharpe_per_trade']:.2f} (per trade; daily annualized "
        f"{b['sharpe_daily_annualized']:.2f})"
    )
    console.print(f"Max drawdown: {money(b['max_drawdown'])}")
    console.print(f"Templates fired: {b['templates_fired']}/{b['templates_total']}")
    if brain:
        console.print(f"Brain coverage: {b['brain_coverage_over_30']} templates with >30 trades")
    console.print(
        f"Mean PnL per trade: {money(b['mean_pnl_per_trade'])} "
        f"(one-sided p for > 0: {b['p_value_mean_pnl_gt_0']:.3g})"
    )
    console.print(f"Power: {power_text(b)}", soft_wrap=True)


def print_day(console: Console, day: dict) -> None:
    """One session's line: trades, wins, losses, PnL and the brain's size."""
    sample = "OOS" if day["out_of_sample"] else "IS "
    console.print(
        f"[dim]{day['session']} {sample}[/dim] trades {day['trades']:3d}  W {day['wins']:3d}  "
        f"L {day['losses']:3d}  PnL {money(day['pnl']):>11}  "
        f"brain {day['brain_templates']} templates / {day['brain_trades']} trades",
        soft_wrap=True,
    )  # one line per session, also in a log file


def print_forward_report(
    console: Console, report: dict, cfg: Any, seconds: float, path: Path
) -> None:
    """The forward pass's final blocks, gates and throughput (``path``: the report file)."""
    n_done, n_all = report["sessions_processed"], report["sessions_total"]
    title = (
        "Phase 4 Forward Pass Complete"
        if report["complete"]
        else f"Phase 4 Forward Pass — stopped after {n_done}/{n_all} sessions (resumable)"
    )
    print_block(console, title, report["all"])
    if report.get("train_until") is not None:
        print_block(console, "In-sample sessions", report["in_sample"])
        print_block(console, "Out-of-sample sessions", report["out_of_sample"])
    g = report["gates"]
    console.print(
        f"\nGates: {g['candidates']:,} candidates at {report['entry_timeframe']} "
        f"({report['cascade']} cascade); Gate 1 (distance < {cfg.match_distance:g}, depth >= "
        f"{cfg.min_depth}) passed {g['gate1_pass']:,}; Gate 2 rejected {g['gate2_reject']:,}; "
        f"Gate 3 blocked {g['gate3_blocked']:,}",
        soft_wrap=True,
    )
    if report.get("forward_until") is not None:
        console.print(
            f"Held back for paper trading: sessions from {fmt_epoch(report['forward_until'])} on"
        )
    console.print(
        f"Throughput: {report['bars_entry_timeframe'] / seconds:,.0f} {report['entry_timeframe']} "
        f"bars/s ({seconds:.2f} s)"
    )
    console.print(f"Report: {path}")


def print_paper_trade(
    console: Console,
    report: dict,
    block: dict,
    production: dict,
    status: str,
    path: Path,
    contract: str,
) -> None:
    """The paper trade's block (``path``: its report file; ``contract``: the instrument's description)."""
    print_block(
        console,
        f"Paper trade — {report['from']} to {report['to']} (frozen production playbook, "
        f"{len(production)} templates, status {status}; {contract})",
        {**block, "days": report["sessions"]},
        brain=False,
    )
    if not production:
        console.print("The production playbook is empty: nothing was traded.")
    console.print(
        f"Report: {path}; total {money(report['total_pnl'])} over "
        f"{report['sessions']} unseen sessions"
    )


def _f(x: float, nd: int) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _g(x: float) -> str:
    """p and q values: two significant digits (3.2e-05 rather than 0.000)."""
    return "—" if x is None or not np.isfinite(x) else f"{x:.2g}"


def _tier_table(rows: pd.DataFrame, title: str, with_sig: bool) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("Template", "Trades", "Win%", "Sharpe", "Tot PnL", "Max DD", "Risk"):
        t.add_column(col, justify="left" if col == "Template" else "right")
    if with_sig:
        for col in ("p", "q", "DSR", "OOS PnL", "Exit eff"):
            t.add_column(col, justify="right")
    r: Any  # itertuples rows: their fields are column values (the stubs type each as any scalar)
    for r in rows.itertuples(index=False):
        cells = [
            f"T-{r.template_id}",
            str(r.total),
            f"{r.win_rate:.0%}",
            f"{r.sharpe:.2f}",
            money(r.total_pnl, 0),
            money(r.max_dd, 0),
            r.risk_level,
        ]
        if with_sig:
            cells += [
                _g(r.p_value),
                _g(r.q_value),
                _f(r.dsr, 2),
                money(r.oos_pnl, 0),
                _f(r.mean_exit_efficiency, 2),
            ]
        t.add_row(*cells)
    return t


def _tf_label(tf: str) -> str:
    return tf.upper() if tf not in (NO_ROOT, "") else "no-ancestor"


def _type_label(t: str) -> str:
    return {"ROCHE_SNAP": "Roche", "STRUCTURAL_DRIVE": "Structural"}.get(t, t)


def print_report(result: Any, console: Console, config: Any, max_rows: int = 25) -> None:
    """The original Phase 5 report (tier tables, ancestry, production line) plus the evidence behind it."""
    st = result.stats
    console.print("\n[bold]=== Phase 5: Strategy Selection ===[/bold]")
    console.print(f"[dim]{PURPOSE}: {DISCLAIMER}[/dim]")
    if st.empty:
        console.print("No templates.")
        return
    in_prod = set(result.production)
    order = st.sort_values(["sharpe", "total"], ascending=[False, False])
    by_trades = st.sort_values(["total", "sharpe"], ascending=[False, False])
    for tier in (1, 2, 3, 4, 0):
        rows = by_trades if tier == 3 else order
        rows = rows[rows["tier"] == tier]
        suffix = ""
        if tier == 4:
            promoted = sum(1 for t in rows["template_id"] if int(t) in in_prod)
            suffix = (
                ", EXCLUDED from production"
                if not promoted
                else f"; the original tiers exclude these — {promoted} of them earn out-of-sample and are in production"
            )
        title = f"{TIER_NAMES[tier]} ({len(rows)} templates{suffix})"
        if rows.empty:
            console.print(title)
            continue
        shown = rows.head(max_rows)
        console.print(_tier_table(shown, title, with_sig=tier in (1, 2)))
        if len(rows) > len(shown):
            console.print(f"  … {len(rows) - len(shown)} more")
    _print_ancestry(result, console)
    _print_evidence(result, console, config)


def _print_ancestry(result: Any, console: Console) -> None:
    st = result.stats
    console.print("\nANCESTRY ANALYSIS:")
    anc = result.ancestry
    r: Any  # itertuples rows: their fields are column values (the stubs type each as any scalar)
    n1 = int((st["tier"] == 1).sum())
    if n1 and not anc.empty:
        for r in anc.itertuples(index=False):
            console.print(
                f"  {_tf_label(r.root_tf)} {_type_label(r.root_type)} → lower TF entry: "
                f"{r.templates}/{n1} Tier 1 templates ({r.share:.0%}), avg Sharpe {r.avg_sharpe:.2f}"
            )
        best = anc.sort_values("avg_sharpe", ascending=False).iloc[0]
        console.print(
            f"  Best macro context: {_tf_label(best.root_tf)} {_type_label(best.root_type)} "
            f"(avg Sharpe {best.avg_sharpe:.2f})"
        )
    else:
        allc = ancestry_table(st[st["total"] > 0], tier=None)
        console.print("  No Tier 1 templates; all traded templates by root context:")
        for r in allc.itertuples(index=False):
            console.print(
                f"  {_tf_label(r.root_tf)} {_type_label(r.root_type)}: {r.templates} templates, "
                f"avg Sharpe {r.avg_sharpe:.2f}"
            )
    tests = result.ancestry_tests
    if len(tests):
        console.print(
            f"  Does ancestry or context pay? Mean PnL per trade, {result.significance_sample} trades "
            "(Welch difference, 95 % CI, two-sided p, BH q over every comparison); context states "
            "shown when q <= 0.10:"
        )
        hidden = 0
        for r in tests.itertuples(index=False):
            is_ctx = str(r.comparison).endswith(" vs rest")
            if is_ctx and not (np.isfinite(r.q_value) and r.q_value <= 0.10):
                hidden += 1
                continue
            if np.isfinite(r.p_value):
                console.print(
                    f"    {r.pattern_type} {r.comparison}: {money(r.difference)} "
                    f"[{money(r.ci_low)}, {money(r.ci_high)}], p {r.p_value:.2g}, q {r.q_value:.2g} "
                    f"(n {r.n_a:,} vs {r.n_b:,})",
                    soft_wrap=True,
                )
            else:
                console.print(
                    f"    {r.pattern_type} {r.comparison}: too few trades to compare "
                    f"(n {r.n_a:,} vs {r.n_b:,})",
                    soft_wrap=True,
                )
        if hidden:
            console.print(
                f"    ({hidden} context comparisons with q > 0.10 in phase5_ancestry.csv)"
            )


def _print_meta(result: Any, console: Console) -> None:
    meta = result.meta
    if not meta:
        console.print(
            "Meta-label gate: none (too few in-sample trades with context, or no threshold earned "
            "out of fold)."
        )
        return
    cv = meta["cv"]
    tried = ", ".join(
        f"p>={t['threshold']:.2f}: {t['trades']:,} at {money(t['mean_pnl'])}"
        for t in cv["thresholds_tried"]
    )
    console.print(
        f"Meta-label gate: gradient boosting on the context at entry, fitted on {cv['trades']:,} "
        f"in-sample trades; purged {cv['folds']}-fold session CV (embargo {cv['embargo_sessions']} "
        f"session) AUC {cv['auc']:.2f}; thresholds tried out of fold: {tried}; chosen p >= "
        f"{meta['threshold']:.2f}. Out of sample it passes {meta['oos_gated']:,} of "
        f"{meta['oos_candidates']:,} trades, judged as '| meta-label' families below.",
        soft_wrap=True,
    )


def _print_evidence(result: Any, console: Console, cfg: Any) -> None:
    fam = result.families
    console.print(
        f"\nEVIDENCE ({result.significance_sample} trades): {power_text(result.test_block)}",
        soft_wrap=True,
    )
    if result.significance_sample != "out-of-sample":
        console.print(
            "  No out-of-sample sessions (run Phases 2–3 with --train-until): in-sample trades chose "
            "the exit parameters, so nothing can be promoted."
        )
    _print_meta(result, console)
    if len(fam):
        tested = fam[fam["tested"]]
        console.print(
            f"Families (pattern type × entry timeframe × direction × root context, and the "
            f"meta-label's gated trades): {len(fam)} traded, "
            f"{len(tested)} with >= {cfg.min_family_trades} trades tested, "
            f"{int(fam['qualifies'].sum())} qualify (q <= {cfg.q_max:g}, DSR >= {cfg.dsr_min:g}, mean > 0)"
        )
        t = Table(title="Families by q (tested ones)", title_justify="left")
        for col in (
            "family",
            "trades",
            "templates",
            "mean $/trade",
            "95% CI",
            "p",
            "q",
            "DSR",
            "detectable $",
            "ok",
        ):
            t.add_column(col, justify="left" if col == "family" else "right")
        r: Any  # itertuples rows: their fields are column values (the stubs type each as any scalar)
        for r in tested.sort_values(["q_value", "p_value"]).head(12).itertuples(index=False):
            t.add_row(
                r.family,
                f"{r.trades:,}",
                str(r.templates),
                money(r.mean_pnl),
                f"[{money(r.ci_low)}, {money(r.ci_high)}]",
                _g(r.p_value),
                _g(r.q_value),
                _f(r.dsr, 2),
                money(r.minimum_detectable),
                "yes" if r.qualifies else "",
            )
        console.print(t)
    n1 = int((result.stats["tier"] == 1).sum())
    console.print(
        f"Tier 1 (the original rule): {n1} template(s), {result.tier1_not_in_production} of them not in "
        "production (production follows out-of-sample expectancy, see families)."
    )
    for tid, e in result.production.items():
        for why in e["families"].values():
            console.print(f"  T-{tid} (tier {e['tier']}): {why['qualified']}", soft_wrap=True)
    where = (
        result.paths[0] if result.paths else Path(setting_default("checkpoint_dir")) / PLAYBOOK_PKL
    )
    console.print(
        f"PRODUCTION PLAYBOOK: {len(result.production)} templates saved to {where} (status "
        f"{STATUS_PENDING}; approve with `edgefinder markets approve-playbook --checkpoint-dir "
        f"{where.parent}`)",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------------------------
# Phases 2–3: a Rich Live dashboard on a terminal, plain Rich progress bars otherwise
# --------------------------------------------------------------------------------------------


class RunDashboard:
    """Phases 2–3's progress: receives the orchestrator's events and renders a Rich Live dashboard
    (``live``, on a terminal) or plain progress bars."""

    def __init__(self, console: Console, live: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.live_mode = live
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=live,
        )
        self.phase = "starting"
        self.level = "-"
        self.levels: list[tuple[int, str, int]] = []
        self.templates = 0
        self.fissions = 0
        self.library = 0
        self.task: Any = None
        self._live: Any = None

    def __enter__(self) -> RunDashboard:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(
                self._render(), console=self.console, refresh_per_second=8, transient=False
            )
            self._live.__enter__()
        else:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
        else:
            self.progress.__exit__(*exc)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan")
        t.add_column()
        t.add_row("phase", self.phase)
        t.add_row("level", self.level)
        per = ", ".join(f"L{lv} {tf}: {n:,}" for lv, tf, n in self.levels) or "-"
        t.add_row("patterns per level", per)
        t.add_row("templates", f"{self.templates:,}")
        t.add_row("fissions", f"{self.fissions:,}")
        t.add_row("library", f"{self.library:,}")
        return Panel(Group(t, self.progress), title="edgefinder markets run", expand=False)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def start_phase(self, name: str, total: float | None) -> None:
        self.phase = PHASE_TITLES.get(name, name)
        if self.task is not None:
            self.progress.update(self.task, visible=not self.live_mode)
        self.task = self.progress.add_task(self.phase, total=total)
        self._refresh()

    def advance(self, n: float = 1.0) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)
        self._refresh()

    def grow(self, extra: float) -> None:
        if self.task is not None:
            task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.task)]
            self.progress.update(self.task, total=(task.total or 0) + extra)

    def skip_phase(self, name: str) -> None:
        self.console.print(f"[dim]{PHASE_TITLES[name]}: resumed from checkpoint[/dim]")

    def on_level(self, level: int, tf: str, n: int) -> None:
        self.level = f"{level} ({tf})"
        self.levels.append((level, tf, n))
        self.advance(1)


def print_run_summary(console: Console, summary: Any) -> None:
    """A short table of what Phases 2–3 produced (and which phases were resumed); ``summary``: the
    orchestrator's ``RunSummary``."""
    from rich.table import Table

    t = Table(title="Phases 2–3", show_header=True, header_style="bold")
    t.add_column("phase")
    t.add_column("result")
    t.add_column("seconds", justify="right")
    per = ", ".join(f"{x['tf']}: {x['patterns']:,}" for x in summary.patterns_per_level)
    rows = {
        "discovery": f"{summary.patterns:,} patterns ({per})"
        if per
        else f"{summary.patterns:,} patterns",
        "clustering": f"{summary.templates:,} templates",
        "playbook": f"{summary.library_templates:,} library templates, {summary.fissions} fission(s)",
    }
    for ph in PHASE_TITLES:
        secs = "resumed" if ph in summary.resumed else f"{summary.seconds.get(ph, 0.0):.1f}"
        t.add_row(PHASE_TITLES[ph], rows[ph], secs)
    console.print(t)
    scope = (
        "all data"
        if summary.train_until is None
        else (
            "bars before "
            + _dt.datetime.fromtimestamp(summary.train_until, _dt.UTC).strftime(
                "%Y-%m-%d %H:%M UTC"
            )
        )
    )
    console.print(
        f"timeframes {','.join(summary.timeframes)}; {scope}; {summary.instrument}; "
        f"checkpoints in {summary.checkpoint_dir}"
    )


@contextmanager
def session_progress(
    console: Console | None, title: str, total: int, completed: int = 0
) -> Iterator[Callable[[], None]]:
    """A transient progress bar over sessions on a terminal (nothing otherwise); yields the call
    that advances it by one session."""
    if console is None or not console.is_terminal:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(title, total=total, completed=completed)
        yield lambda: progress.update(task, advance=1)
