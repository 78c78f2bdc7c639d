import uuid
from datetime import date

from directory.schemas import OfferPublic
from referral import gazetteer
from referral.matcher import rank


def offer(
    slug,
    *,
    coverage="local",
    roles=("teen",),
    needs=("visits",),
    lat=None,
    lon=None,
    radius=50,
    state=None,
):
    return OfferPublic(
        id=uuid.uuid4(),
        slug=slug,
        name=slug,
        organisation="Org",
        description="",
        needs=list(needs),
        roles=list(roles),
        delivery=["phone"],
        coverage=coverage,
        radius_km=radius,
        city=None,
        federal_state=state,
        latitude=lat,
        longitude=lon,
        phone=None,
        website=None,
        source="test",
        last_checked=date(2026, 1, 1),
    )


NUREMBERG = (49.4551662968, 11.0793272477)
HELPLINE = offer("helpline", coverage="national", needs=("talking",))


def test_near_offer_with_matching_need_comes_first_with_distance():
    near = offer("near", lat=NUREMBERG[0], lon=NUREMBERG[1])
    result = rank([HELPLINE, near], area=gazetteer.lookup("90402"), role="teen", needs=["visits"])
    assert [m.offer.slug for m in result] == ["near", "helpline"]
    assert result[0].distance_km is not None and result[0].distance_km < 5
    assert result[0].matched_needs == ("visits",)


def test_offer_outside_its_radius_is_not_shown():
    near = offer("near", lat=NUREMBERG[0], lon=NUREMBERG[1], radius=50)
    result = rank([HELPLINE, near], area=gazetteer.lookup("10115"), role="teen", needs=["visits"])
    assert [m.offer.slug for m in result] == ["helpline"]


def test_role_eligibility_is_never_violated():
    adults = offer("adults", coverage="national", roles=("caregiver",))
    result = rank([HELPLINE, adults], area=None, role="teen", needs=["visits"])
    assert all("teen" in m.offer.roles for m in result)


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
    assert result[-1].offer.slug == "helpline"


def test_state_offer_only_for_its_state():
    nrw = offer("nrw", coverage="states", state="NW")
    assert [
        m.offer.slug
        for m in rank([nrw], area=gazetteer.lookup("33647"), role="teen", needs=["visits"])
    ] == ["nrw"]
    assert rank([nrw], area=gazetteer.lookup("90402"), role="teen", needs=["visits"]) == []
