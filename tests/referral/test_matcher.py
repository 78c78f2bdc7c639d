from datetime import date

from referral import gazetteer
from referral.matcher import rank
from referral.records import OfferRecord


def offer(
    slug,
    *,
    coverage="radius",
    roles=("teen",),
    needs=("visits",),
    lat=None,
    lon=None,
    radius=50,
    states=(),
    service_id=None,
):
    return OfferRecord(
        service_id=service_id or slug,
        name=slug,
        organisation="Org",
        description="",
        target_groups=frozenset(roles),
        needs=frozenset(needs),
        delivery=frozenset({"phone"}),
        languages=frozenset({"de"}),
        coverage=coverage,
        source="test",
        assured_date=date(2026, 1, 1),
        radius_km=radius if coverage == "radius" else None,
        states=frozenset(states),
        latitude=lat,
        longitude=lon,
    )


NUREMBERG = (49.4551662968, 11.0793272477)
HELPLINE = offer("helpline", coverage="national", needs=("talking",))


def test_near_offer_with_matching_need_comes_first_with_distance():
    near = offer("near", lat=NUREMBERG[0], lon=NUREMBERG[1])
    result = rank([HELPLINE, near], area=gazetteer.lookup("90402"), role="teen", needs=["visits"])
    assert [m.offer.name for m in result] == ["near", "helpline"]
    assert result[0].distance_km is not None and result[0].distance_km < 5
    assert result[0].matched_needs == ("visits",)


def test_offer_outside_its_radius_is_not_shown():
    near = offer("near", lat=NUREMBERG[0], lon=NUREMBERG[1], radius=50)
    result = rank([HELPLINE, near], area=gazetteer.lookup("10115"), role="teen", needs=["visits"])
    assert [m.offer.name for m in result] == ["helpline"]


def test_role_eligibility_is_never_violated():
    adults = offer("adults", coverage="national", roles=("caregiver",))
    result = rank([HELPLINE, adults], area=None, role="teen", needs=["visits"])
    assert all("teen" in m.offer.target_groups for m in result)


def test_nationwide_fallback_is_always_present():
    locals_ = [offer(f"l{i}", lat=NUREMBERG[0] + i * 0.01, lon=NUREMBERG[1]) for i in range(5)]
    result = rank(
        [*locals_, HELPLINE],
        area=gazetteer.lookup("90402"),
        role="teen",
        needs=["visits"],
        limit=3,
    )
    assert len(result) == 3
    assert result[-1].offer.name == "helpline"


def test_state_offer_only_for_its_state():
    nrw = offer("nrw", coverage="states", states=("NW", "HB"))
    assert [
        m.offer.name
        for m in rank([nrw], area=gazetteer.lookup("33647"), role="teen", needs=["visits"])
    ] == ["nrw"]
    assert rank([nrw], area=gazetteer.lookup("90402"), role="teen", needs=["visits"]) == []


def test_online_offer_reaches_everyone_like_a_nationwide_one():
    chat = offer("chat", coverage="online")
    assert [m.offer.name for m in rank([chat], area=None, role="teen", needs=["visits"])] == [
        "chat"
    ]


def test_a_service_with_two_places_in_reach_is_shown_once_at_the_nearer_place():
    far = offer("place", lat=NUREMBERG[0] + 0.3, lon=NUREMBERG[1], service_id="svc")
    near = offer("place", lat=NUREMBERG[0], lon=NUREMBERG[1], service_id="svc")
    result = rank([far, near], area=gazetteer.lookup("90402"), role="teen", needs=["visits"])
    assert len(result) == 1
    assert result[0].distance_km < 5
