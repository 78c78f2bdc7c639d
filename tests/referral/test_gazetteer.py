import pytest

from referral import gazetteer


@pytest.mark.parametrize(
    ("postcode", "state"),
    [
        ("10115", "BE"),
        ("14050", "BE"),
        ("14467", "BB"),
        ("20095", "HH"),
        ("28195", "HB"),
        ("27568", "HB"),
        ("01067", "SN"),
        ("80331", "BY"),
        ("90402", "BY"),
        ("70173", "BW"),
        ("33647", "NW"),
        ("47877", "NW"),
        ("60311", "HE"),
        ("55116", "RP"),
        ("66111", "SL"),
        ("99084", "TH"),
        ("39104", "ST"),
        ("19055", "MV"),
        ("24103", "SH"),
        ("30159", "NI"),
    ],
)
def test_known_postcodes_resolve_to_their_state(postcode, state):
    area = gazetteer.lookup(postcode)
    assert area.federal_state == state
    assert 47 < area.latitude < 55.1 and 5.8 < area.longitude < 15.1


def test_partial_postcode_gives_the_centre_of_its_region():
    area = gazetteer.lookup("904")
    assert area.precision == 3
    assert area.federal_state == "BY"
    assert abs(area.latitude - 49.45) < 0.3


@pytest.mark.parametrize("raw", ["abc", "1", "123456", "90 40 2x", "", "<b>9</b>"])
def test_malformed_input_is_rejected(raw):
    with pytest.raises(gazetteer.MalformedPostcode):
        gazetteer.lookup(raw)


def test_well_formed_but_unknown_postcode_is_told_apart():
    with pytest.raises(gazetteer.UnknownPostcode):
        gazetteer.lookup("00000")


def test_spaces_and_zero_width_characters_are_ignored():
    assert gazetteer.lookup(" 904\u200b02 ").prefix == "90402"
