"""The directory of support offers (and later prisons): models, seed data, curation."""
