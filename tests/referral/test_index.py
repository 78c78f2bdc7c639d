"""The referral index: its guarantees as properties over random directories, and its edges."""

from __future__ import annotations

import math
import threading
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referral.gazetteer import Area
from referral.index import (
    DEFAULT_RADIUS_KM,
    InvalidQuery,
    Referral,
    ReferralIndex,
    ReferralIndexHolder,
    UnknownPrison,
)
from referral.records import (
    COVERAGE,
    DELIVERY,
    FEDERAL_STATES,
    NEEDS,
    TARGET_GROUPS,
    OfferRecord,
    PrisonRecord,
)

CHECKED = date(2026, 11, 1)
# A box over western and central Germany: wide enough for distances beyond every radius, small
# enough that random users and offers often meet.
LATITUDES = st.floats(49.5, 52.5, allow_nan=False)
LONGITUDES = st.floats(6.0, 12.0, allow_nan=False)
EDGE_KM = 1e-6
PROPERTIES = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine, written independently of the index."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def record(service_id: str = "s", **fields: object) -> OfferRecord:
    values: dict[str, object] = {
        "name": service_id,
        "organisation": "Org",
        "description": "",
        "target_groups": frozenset({"teen"}),
        "needs": frozenset({"talking"}),
        "delivery": frozenset({"phone"}),
        "languages": frozenset({"de"}),
        "coverage": "national",
        "source": "test",
        "assured_date": CHECKED,
    }
    values.update(fields)
    return OfferRecord(service_id=service_id, **values)  # type: ignore[arg-type]


def area(lat: float, lon: float, state: str | None = "NW") -> Area:
    return Area(prefix="", latitude=lat, longitude=lon, federal_state=state, precision=5)


@st.composite
def offers(draw: st.DrawFn) -> OfferRecord:
    coverage = draw(st.sampled_from(COVERAGE))
    min_age = draw(st.none() | st.integers(0, 25))
    placed = coverage == "radius" and draw(st.integers(0, 9)) > 0
    number = draw(st.integers(0, 5))
    return record(
        # One coverage kind per service, as in the directory; a few ids repeat (several places).
        f"{coverage}-{number}",
        name=draw(st.sampled_from(["A", "B", "C"])),
        target_groups=draw(st.frozensets(st.sampled_from(TARGET_GROUPS), min_size=1)),
        needs=draw(st.frozensets(st.sampled_from(NEEDS), min_size=1)),
        delivery=draw(st.frozensets(st.sampled_from(DELIVERY), min_size=1)),
        languages=draw(st.frozensets(st.sampled_from(["de", "en", "tr"]), min_size=1)),
        coverage=coverage,
        radius_km=draw(st.none() | st.sampled_from([1.0, 10.0, 35.0, 80.0, 250.0])),
        states=draw(st.frozensets(st.sampled_from(FEDERAL_STATES), min_size=1))
        if coverage == "states"
        else frozenset(),
        latitude=draw(LATITUDES) if placed else None,
        longitude=draw(LONGITUDES) if placed else None,
        min_age=min_age,
        max_age=draw(st.none() | st.integers(min_age or 0, 40)),
        prison_ids=draw(st.frozensets(st.sampled_from(["p1", "p2"]), max_size=1)),
        # The directory gives every place of a service the service's number (docs/directory.md).
        phone="116 111" if number % 3 == 0 else None,
    )


@st.composite
def queries(draw: st.DrawFn) -> dict[str, object]:
    return {
        "area": draw(
            st.none() | st.builds(area, LATITUDES, LONGITUDES, st.sampled_from(FEDERAL_STATES))
        ),
        "role": draw(st.none() | st.sampled_from(TARGET_GROUPS)),
        "age": draw(st.none() | st.integers(0, 45)),
        "needs": draw(st.frozensets(st.sampled_from(NEEDS), max_size=3)),
        "language": draw(st.none() | st.sampled_from(["de", "en", "tr", "ar"])),
        "delivery": draw(st.frozensets(st.sampled_from(DELIVERY), max_size=2)),
        "limit": draw(st.integers(1, 8)),
    }


PRISON_AT = PrisonRecord(
    prison_id="p1",
    slug="jva-eins",
    name="JVA Eins",
    federal_state="NW",
    prison_types=frozenset({"closed"}),
    source="test",
    assured_date=CHECKED,
    latitude=51.0,
    longitude=9.0,
)


def fits(offer: OfferRecord, query: dict[str, object], *, slack_km: float = 0.0) -> bool:
    """Whether an offer passes the hard filters, checked by hand."""
    role, age, user = query["role"], query["age"], query["area"]
    if role is not None and role not in offer.target_groups:
        return False
    if age is not None and not (
        (offer.min_age or 0) <= age <= (120 if offer.max_age is None else offer.max_age)  # type: ignore[operator]
    ):
        return False
    if offer.coverage in ("national", "online"):
        return True
    if not isinstance(user, Area):
        return False
    if offer.coverage == "states":
        return user.federal_state in offer.states
    if offer.latitude is None or offer.longitude is None:
        return False
    radius = DEFAULT_RADIUS_KM if offer.radius_km is None else offer.radius_km
    distance = km(user.latitude, user.longitude, offer.latitude, offer.longitude)
    return distance <= radius + slack_km


def search(index: ReferralIndex, query: dict[str, object], **extra: object) -> Referral:
    return index.search(**query, **extra)  # type: ignore[arg-type]


directories = st.lists(offers(), max_size=30)


@PROPERTIES
@given(directory=directories, query=queries())
def test_matches_never_violate_target_group_age_or_coverage(directory, query):
    result = search(ReferralIndex(directory), query)
    for match in result.matches:
        assert fits(match.offer, query, slack_km=EDGE_KM)


@PROPERTIES
@given(directory=directories, query=queries())
def test_matches_are_sorted_by_score_with_one_place_per_service(directory, query):
    result = search(ReferralIndex(directory), query)
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True)
    services = [m.offer.service_id for m in result.matches]
    assert len(services) == len(set(services))
    assert len(services) <= query["limit"]


@PROPERTIES
@given(directory=directories, query=queries())
def test_a_nationwide_or_online_offer_is_there_whenever_one_fits(directory, query):
    result = search(ReferralIndex(directory), query)
    if any(o.coverage in ("national", "online") and fits(o, query) for o in directory):
        assert any(m.offer.coverage in ("national", "online") for m in result.matches)


@PROPERTIES
@given(directory=directories, query=queries())
def test_a_number_to_call_is_there_whenever_a_nationwide_phone_line_fits(directory, query):
    result = search(ReferralIndex(directory), query)
    if any(o.coverage in ("national", "online") and o.phone and fits(o, query) for o in directory):
        assert any(m.offer.phone for m in result.matches)
        assert any(m.offer.coverage in ("national", "online") for m in result.matches)


@PROPERTIES
@given(directory=directories, query=queries())
def test_with_room_for_all_every_fitting_service_is_found(directory, query):
    # The grid may only ever narrow the search to cells, never lose an offer.
    result = search(ReferralIndex(directory), {**query, "limit": 50})
    found = {m.offer.service_id for m in result.matches}
    surely = {o.service_id for o in directory if fits(o, query, slack_km=-EDGE_KM)}
    maybe = {o.service_id for o in directory if fits(o, query, slack_km=EDGE_KM)}
    assert surely <= found <= maybe


@PROPERTIES
@given(directory=directories, query=queries())
def test_offers_near_the_prison_fit_and_are_near_it_or_linked_to_it(directory, query):
    result = search(ReferralIndex(directory, [PRISON_AT]), query, prison="jva-eins")
    assert result.prison == PRISON_AT
    at_prison = {**query, "area": area(PRISON_AT.latitude, PRISON_AT.longitude, "NW")}
    shown = {m.offer.service_id for m in result.matches}
    for match in result.near_prison:
        offer = match.offer
        assert match.reason.scope == "near_prison"
        assert offer.service_id not in shown
        assert offer.coverage in ("radius", "states")
        linked = "p1" in offer.prison_ids
        assert linked or ("visits" in offer.needs and fits(offer, at_prison, slack_km=EDGE_KM))
    services = [m.offer.service_id for m in result.near_prison]
    assert len(services) == len(set(services))


def test_online_only_results_make_room_for_the_helpline():
    online = [record(f"online-{i}", coverage="online", name=f"A{i}") for i in range(3)]
    helpline = record("helpline", name="Z", phone="116 111", needs=frozenset({"crisis"}))
    result = ReferralIndex([*online, helpline]).search(role="teen", needs=["talking"], limit=3)
    assert [m.offer.service_id for m in result.matches] == ["online-0", "online-1", "helpline"]


def test_a_local_number_is_enough_and_a_line_for_another_role_is_never_brought():
    local = record(
        "local", coverage="radius", latitude=50.0, longitude=8.0, phone="069 123", name="A"
    )
    online = record("online", coverage="online", name="B")
    helpline = record("helpline", name="C", phone="116 111")
    parents = record("parents-line", target_groups=frozenset({"caregiver"}), phone="0800 1")
    index = ReferralIndex([local, online, helpline, parents])
    result = index.search(area=area(50.0, 8.0), role="teen", limit=2)
    assert [m.offer.service_id for m in result.matches] == ["local", "online"]
    result = ReferralIndex([online, parents]).search(role="teen")
    assert [m.offer.service_id for m in result.matches] == ["online"]


def test_offer_just_across_a_grid_cell_border_is_found():
    # 0.25 degree cells: 50.0 is a border; the user is 220 m north of an offer with 1 km.
    offer = record("near", coverage="radius", radius_km=1.0, latitude=49.999, longitude=8.0)
    result = ReferralIndex([offer]).search(area=area(50.001, 8.0), role="teen")
    assert [m.offer.service_id for m in result.matches] == ["near"]
    assert result.matches[0].distance_km == pytest.approx(0.2, abs=0.05)


def test_offer_with_a_wide_radius_is_found_many_cells_away():
    offer = record("wide", coverage="radius", radius_km=250.0, latitude=48.0, longitude=8.0)
    result = ReferralIndex([offer]).search(area=area(49.9, 8.5), role="teen")
    assert [m.offer.service_id for m in result.matches] == ["wide"]


def test_offer_without_radius_reaches_the_default_distance():
    offer = record("plain", coverage="radius", radius_km=None, latitude=50.0, longitude=8.0)
    index = ReferralIndex([offer])
    inside = 50.0 + (DEFAULT_RADIUS_KM - 1) / 111.2
    outside = 50.0 + (DEFAULT_RADIUS_KM + 1) / 111.2
    assert index.search(area=area(inside, 8.0)).matches
    assert not index.search(area=area(outside, 8.0)).matches


def test_radius_offer_without_a_place_reaches_nobody():
    offer = record("lost", coverage="radius", radius_km=500.0)
    assert ReferralIndex([offer]).search(area=area(50.0, 8.0)).matches == []


def test_record_with_an_unknown_coverage_is_left_out_without_failing_the_build():
    index = ReferralIndex([record("odd", coverage="galaxy"), record("helpline")])
    result = index.search(area=area(50.0, 8.0), role="teen")
    assert [m.offer.service_id for m in result.matches] == ["helpline"]


def test_state_offers_need_a_known_state():
    state_offer = record("nrw", coverage="states", states=frozenset({"NW"}))
    index = ReferralIndex([state_offer])
    assert index.search(area=area(51.5, 7.5, "NW")).matches
    assert not index.search(area=area(51.5, 7.5, None)).matches
    assert not index.search(area=area(51.5, 7.5, "BY")).matches


def test_empty_index_answers_with_no_matches():
    result = ReferralIndex([]).search(area=area(50.0, 8.0), role="teen", needs=["visits"])
    assert result.matches == [] and result.near_prison == [] and result.prison is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"role": "pirate"}, "role"),
        ({"needs": ["visits", "flying"]}, "needs"),
        ({"delivery": ["telepathy"]}, "delivery"),
        ({"age": -1}, "age"),
        ({"age": 121}, "age"),
        ({"limit": 0}, "limit"),
        ({"limit": 777}, "limit"),
    ],
)
def test_unknown_codes_and_out_of_range_values_are_rejected_naming_the_field(query, field):
    with pytest.raises(InvalidQuery) as caught:
        ReferralIndex([record()]).search(**query)
    assert caught.value.field == field
    for value in query.values():
        if value != 0:  # "0" is part of "between 0 and 120"
            assert str(value) not in caught.value.message


def test_prison_is_found_by_slug_or_id_and_unknown_ones_are_refused():
    index = ReferralIndex([record()], [PRISON_AT])
    assert index.search(prison="jva-eins").prison == PRISON_AT
    assert index.search(prison="p1").prison == PRISON_AT
    with pytest.raises(UnknownPrison):
        index.search(prison="jva-nirgendwo")


def test_a_language_past_the_sixty_fourth_still_scores_and_is_named_in_the_reason():
    many = [record(f"lang-{i}", languages=frozenset({f"l{i:02d}"})) for i in range(70)]
    rare = record("rare", languages=frozenset({"zz"}))
    result = ReferralIndex([*many, rare]).search(language="zz", limit=3)
    assert result.matches[0].offer.service_id == "rare"
    assert result.matches[0].reason.language == "zz"
    assert all(m.reason.language is None for m in result.matches[1:])


def test_requested_delivery_and_language_lift_an_offer_and_show_in_its_reason():
    phone = record("phone", delivery=frozenset({"phone"}), languages=frozenset({"de"}))
    online = record("online", delivery=frozenset({"online"}), languages=frozenset({"de", "tr"}))
    index = ReferralIndex([phone, online])
    first = index.search(delivery=["online"]).matches[0]
    assert first.offer.service_id == "online" and first.reason.delivery == ("online",)
    first = index.search(language="tr").matches[0]
    assert first.offer.service_id == "online" and first.reason.language == "tr"


def test_nearer_offer_wins_between_equally_fitting_offers():
    far = record("far", coverage="radius", radius_km=80.0, latitude=50.5, longitude=8.0)
    near = record("near", coverage="radius", radius_km=80.0, latitude=50.1, longitude=8.0)
    result = ReferralIndex([far, near]).search(area=area(50.0, 8.0), needs=["talking"])
    assert [m.offer.service_id for m in result.matches] == ["near", "far"]


def test_holder_swaps_whole_indexes_while_readers_search():
    holder = ReferralIndexHolder(ReferralIndex([record("old")]))
    seen: set[tuple[str, ...]] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            index = holder.current
            assert index is not None
            seen.add(tuple(m.offer.service_id for m in index.search().matches))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        holder.rebuild([record("new-a"), record("new-b")])
    stop.set()
    reader.join()
    assert seen <= {("old",), ("new-a", "new-b")}
    assert holder.current is not None and len(holder.current) == 2


def test_holder_starts_empty():
    assert ReferralIndexHolder().current is None
