"""Referral: the postcode gazetteer and the matcher that ranks offers for a user."""
