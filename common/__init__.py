"""Helpers shared by several apps: no models, no imports of any project app.

`common` sits below every app (import-linter holds it there): text cleaning, formula-safe
CSV/XLSX writers, the service-backed admin base, the MFA step-up kept in the session and the
view guards built on it (signed in, verified, freshly stepped up), safe `next` redirects.
"""
