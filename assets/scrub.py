"""Step 2, scrub: `raw_calls` → `clean_calls` and `pii_audit`; every step's quarantined records → `quarantine`, excerpts
scrubbed."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    Output,
    PartitionsDefinition,
    ResourceParam,
    multi_asset,
)

from assets.metadata import counts_table
from pipeline.scrub import open_analyzer, scrub_calls, scrub_texts, session_key
from pipeline.settings import Settings
from pipeline.warehouse import SCHEMAS


def scrub_assets(days: PartitionsDefinition) -> AssetsDefinition:
    """Step 2 over the daily partitions `days`, the same days as step 1."""

    @multi_asset(
        ins={"raw_calls": AssetIn(), "raw_quarantine": AssetIn()},
        outs={
            "clean_calls": AssetOut(
                description="The calls with PII and secrets replaced by placeholders (<PERSON_1>): all later steps read these.",
            ),
            "pii_audit": AssetOut(
                description="Per call, how many values of each entity type each recognizer removed (never the values).",
            ),
            "pii_vault": AssetOut(
                description="Only with SLM_VAULT_KEY set: per call, its placeholder -> raw value mapping, Fernet-encrypted.",
                is_required=False,
            ),
            "quarantine": AssetOut(
                description="Every record or call a step could not use, with step, file, line, reason and a scrubbed excerpt.",
            ),
        },
        partitions_def=days,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="scrub",
    )
    def scrub(
        context: AssetExecutionContext,
        raw_calls: pd.DataFrame,
        raw_quarantine: pd.DataFrame,
        settings: ResourceParam[Settings],
    ):
        """Scrub every text of every call with Presidio; a call that cannot be scrubbed is quarantined, never passed on."""
        config = settings.scrub

        logged = set()

        def progress(done: int, total: int) -> None:
            tenth = 10 * done // max(total, 1)
            if tenth not in logged:  # one line per tenth of the way
                logged.add(tenth)
                context.log.info(f"scrubbed {done}/{total} distinct texts")

        with open_analyzer(config, progress) as analyzer:
            scrubbed = scrub_calls(raw_calls, analyzer, config, session_key(settings.secrets_dir))
            excerpts = scrub_texts(raw_quarantine["excerpt"].fillna("").tolist(), analyzer)
            # a reason can quote the record after its kind (an LLM error message with a key in it); the kind is ours
            parts = [reason.partition(": ") for reason in raw_quarantine["reason"].fillna("")]
            details = scrub_texts([detail for _, _, detail in parts], analyzer)
        stats = scrubbed.stats
        if not stats.reconciles():
            raise Failure(f"counts do not reconcile: {stats}")
        # what cannot be scrubbed is not kept: no excerpt at all, and only the reason's kind
        raw_quarantine = raw_quarantine.assign(
            excerpt=[e or "" for e in excerpts],
            reason=[f"{kind}: {detail}" if detail else kind for (kind, _, _), detail in zip(parts, details)],
        )
        quarantine = pd.concat([raw_quarantine, scrubbed.quarantine], ignore_index=True).astype(SCHEMAS["quarantine"])
        context.log.info(
            f"{stats.calls} calls → {stats.clean} clean + {stats.quarantined} quarantined in {stats.seconds:.1f} s"
        )
        yield Output(
            scrubbed.clean_calls,
            "clean_calls",
            metadata={
                "calls": stats.calls,
                "clean": stats.clean,
                "quarantined": stats.quarantined,
                "reconciliation": f"{stats.calls} raw = {stats.clean} clean + {stats.quarantined} quarantined",
                "texts": stats.texts,
                "distinct_texts_analyzed": stats.distinct_texts,
                "verification_failures": stats.verification_failures,
                "verification_seconds": round(stats.verification_seconds, 2),
                "seconds": round(stats.seconds, 2),
                "calls_per_second": round(stats.calls / stats.seconds, 1) if stats.seconds else 0.0,
            },
        )
        yield Output(
            scrubbed.pii_audit,
            "pii_audit",
            metadata={
                "values_removed": sum(stats.entities.values()),
                "by_entity_type": counts_table(stats.entities, "entity type"),
                "by_recognizer": counts_table(stats.recognizers, "recognizer"),
            },
        )
        if config.vault_key:
            yield Output(scrubbed.vault, "pii_vault", metadata={"calls_sealed": len(scrubbed.vault)})
        reasons = quarantine.groupby(["step", "reason"]).size()
        yield Output(
            quarantine,
            "quarantine",
            metadata={
                "quarantined": len(quarantine),
                "by_step": counts_table(quarantine["step"].value_counts().to_dict(), "step"),
                "reasons": counts_table(
                    {f"{step}: {reason[:80]}": int(n) for (step, reason), n in reasons.items()}, "reason"
                ),
            },
        )

    return scrub
