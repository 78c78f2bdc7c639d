"""Referral: the postcode gazetteer, the need lexicon and the index that ranks offers."""
