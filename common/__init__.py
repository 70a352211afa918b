"""Helpers shared by several apps: no models, no imports of any project app.

`common` sits below every app (import-linter holds it there): text cleaning, formula-safe
CSV/XLSX writers, the service-backed admin base.
"""
