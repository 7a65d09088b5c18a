"""Benchmark: full seed import (WHO ICD-10 hierarchy + RuMedBench symptoms) against a row-at-a-time baseline.

    .venv/bin/python bench/bench_graph_import.py

Both variants write the same parsed payload into a fresh FalkorDB graph with the same indexes; the
batched one is the product's path (UNWIND $rows ... MERGE, built in a staging key, then published).
"""

from __future__ import annotations

import time

from bench_graph_common import services_start


def main() -> None:
    services_start(with_database=False)
    import dataclasses

    from django.conf import settings

    from graph.importers import icd10_payload, rumedbench_payload
    from graph.payload import graph_counts, payload_write
    from graph.schema import NODE_LABELS, schema_ensure
    from graph.store import store_for

    started = time.perf_counter()
    payload = icd10_payload()
    parsed_icd = time.perf_counter()
    extra = rumedbench_payload()
    for label, nodes in extra.nodes.items():
        for key, props in nodes.items():
            payload.node_add(label, key, props)
    payload.edges.update(extra.edges)
    parsed = time.perf_counter()

    store = store_for(settings.GRAPH)

    def build(target) -> None:
        schema_ensure(target)
        payload_write(target, payload)

    store.rebuild(build, from_current=True)
    written = time.perf_counter()
    counts = graph_counts(store)

    baseline = store_for(dataclasses.replace(settings.GRAPH, database="medsyn_bench_rowwise"))
    schema_ensure(baseline)
    base_started = time.perf_counter()
    for label in NODE_LABELS:
        for key, props in payload.nodes.get(label, {}).items():
            baseline.run(f"MERGE (n:{label} {{key: $key}}) SET n += $props", {"key": key, "props": props})
    for edge, props in payload.edges.items():
        baseline.run(f"MATCH (a:{edge.from_label} {{key: $a}}) MATCH (b:{edge.to_label} {{key: $b}}) "
                     f"MERGE (a)-[e:{edge.type} {{source: $source}}]->(b) SET e += $props",
                     {"a": edge.from_key, "b": edge.to_key, "source": edge.source, "props": props})
    base_written = time.perf_counter()
    assert graph_counts(baseline) == counts, "the baseline must build the same graph"

    batched = written - parsed
    rowwise = base_written - base_started
    print(f"payload: {payload.size} nodes+edges  {counts}")
    print(f"parse ICD-10            {parsed_icd - started:7.2f} s")
    print(f"parse RuMedBench        {parsed - parsed_icd:7.2f} s")
    print(f"write batched (staging) {batched:7.2f} s")
    print(f"FULL IMPORT             {written - started:7.2f} s   (target < 10 s)")
    print(f"write row-at-a-time     {rowwise:7.2f} s")
    print(f"speed-up of the write   {rowwise / batched:7.1f} x  (target >= 20 x)")
    print(f"full import vs baseline {(rowwise + parsed - started) / (written - started):7.1f} x")


if __name__ == "__main__":
    main()
