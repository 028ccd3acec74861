"Evaluation: benchmarks, paired statistics, the acceptance gate, reports."
