"""The directory: organisations, services, places and prisons (HSDS 3.0-aligned models), the
shipped seed, HSDS-style JSON/CSV import and export with validation reports, and the published
records the referral engine ranks (see docs/directory.md)."""
