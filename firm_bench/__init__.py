"""firm-bench: a reproducible benchmark and replication harness for FIRM.

FIRM (Focused In-distribution Representation Modeling) is a contrastive loss
for anomaly detection (arXiv 2501.05130). See README.md, docs/METHOD.md (the
method as implemented) and the module docstrings; each paper concept lives in
one module.
"""

__version__ = "0.1.0"
