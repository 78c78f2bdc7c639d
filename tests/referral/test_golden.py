"""Golden referral cases over a small hand-built directory: who asks, where, for what, and which
offers must come first, with which reason.

The directory below is a test fixture modelled on real kinds of offers (visit support at JVA
Bielefeld-Brackwede, a Nuremberg family service, the national helplines); names and places are
realistic, but the records are not directory data and claim nothing about real organisations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from core.i18n import Catalogue, load_catalogue
from referral import gazetteer
from referral.cards import reason_line
from referral.index import Match, ReferralIndex
from referral.records import OfferRecord, PrisonRecord, VisitInfo

CHECKED = date(2026, 11, 1)
SOURCE = "test fixture"


def at(postcode: str) -> dict[str, float]:
    area = gazetteer.lookup(postcode)
    return {"latitude": area.latitude, "longitude": area.longitude}


def offer(service_id: str, name: str, **fields: object) -> OfferRecord:
    values: dict[str, object] = {
        "organisation": "Beispielträger e.V.",
        "description": "",
        "delivery": frozenset({"in_person"}),
        "languages": frozenset({"de"}),
        "source": SOURCE,
        "assured_date": CHECKED,
    }
    values.update(fields)
    for key in ("target_groups", "needs", "delivery", "languages", "states", "prison_ids"):
        if key in values and not isinstance(values[key], frozenset):
            values[key] = frozenset(values[key])  # type: ignore[arg-type]
    return OfferRecord(service_id=service_id, name=name, **values)  # type: ignore[arg-type]


BRACKWEDE = PrisonRecord(
    prison_id="nw-bielefeld-brackwede",
    slug="jva-bielefeld-brackwede",
    name="JVA Bielefeld-Brackwede",
    federal_state="NW",
    prison_types=frozenset({"men", "women", "closed"}),
    source=SOURCE,
    assured_date=CHECKED,
    city="Bielefeld",
    postal_code="33649",
    visits=VisitInfo(family_rooms=True),
    **at("33649"),
)
WILLICH = PrisonRecord(
    prison_id="nw-willich-1",
    slug="jva-willich-1",
    name="JVA Willich I",
    federal_state="NW",
    prison_types=frozenset({"men", "closed"}),
    source=SOURCE,
    assured_date=CHECKED,
    city="Willich",
    postal_code="47877",
    **at("47877"),
)
UNPLACED = PrisonRecord(
    prison_id="by-unplaced",
    slug="jva-ohne-adresse",
    name="JVA ohne bekannte Adresse",
    federal_state="BY",
    prison_types=frozenset({"closed"}),
    source=SOURCE,
    assured_date=CHECKED,
)
PRISONS = [BRACKWEDE, WILLICH, UNPLACED]

TEENS_AND_KIDS = {"child", "teen"}
DIRECTORY = [
    offer(
        "besuchsbegleitung-brackwede",
        "Besuchsbegleitung für Kinder – JVA Bielefeld-Brackwede",
        target_groups=TEENS_AND_KIDS | {"caregiver"},
        needs={"visits", "talking"},
        delivery={"in_person", "phone"},
        coverage="radius",
        radius_km=40,
        city="Bielefeld",
        prison_ids={BRACKWEDE.prison_id},
        **at("33649"),
    ),
    offer(
        "familienberatung-bielefeld",
        "Familienberatungsstelle Bielefeld-Mitte",
        target_groups=TEENS_AND_KIDS | {"young_adult", "caregiver"},
        needs={"talking", "school"},
        languages={"de", "tr"},
        coverage="radius",
        radius_km=25,
        city="Bielefeld",
        **at("33602"),
    ),
    offer(
        "jugendgruppe-bielefeld",
        "Gruppe für Jugendliche mit einem Elternteil in Haft",
        target_groups={"teen"},
        needs={"talking"},
        delivery={"group"},
        coverage="radius",
        radius_km=30,
        min_age=12,
        max_age=17,
        city="Bielefeld",
        **at("33647"),
    ),
    offer(
        "elternberatung-nrw",
        "Beratung für Angehörige von Inhaftierten (Köln)",
        target_groups={"caregiver", "parent_in_prison"},
        needs={"money", "rights", "release"},
        coverage="radius",
        radius_km=50,
        city="Köln",
        **at("50667"),
    ),
    offer(
        "elternberatung-nrw",
        "Beratung für Angehörige von Inhaftierten (Bielefeld)",
        target_groups={"caregiver", "parent_in_prison"},
        needs={"money", "rights", "release"},
        coverage="radius",
        radius_km=50,
        city="Bielefeld",
        **at("33602"),
    ),
    offer(
        "netzwerk-kvi-nrw",
        "Landesfachstelle Netzwerk Kinder von Inhaftierten NRW",
        target_groups={"caregiver", "professional"},
        needs={"visits", "rights", "training", "material"},
        delivery={"phone", "online"},
        coverage="states",
        states={"NW"},
    ),
    offer(
        "besuchshilfe-willich",
        "Vater-Kind-Besuche JVA Willich",
        target_groups=TEENS_AND_KIDS | {"caregiver"},
        needs={"visits"},
        coverage="radius",
        radius_km=20,
        city="Willich",
        prison_ids={WILLICH.prison_id},
        **at("47877"),
    ),
    offer(
        "treffpunkt-nuernberg",
        "Treffpunkt: Hilfe für Kinder von Inhaftierten",
        organisation="Treffpunkt e.V.",
        target_groups=TEENS_AND_KIDS | {"caregiver", "parent_in_prison"},
        needs={"visits", "talking", "release", "money"},
        languages={"de", "en"},
        delivery={"in_person", "phone"},
        coverage="radius",
        radius_km=60,
        city="Nürnberg",
        prison_ids={UNPLACED.prison_id},
        **at("90402"),
    ),
    offer(
        "familien-muenchen",
        "Familienzentrum München: Kinder mit Eltern in Haft",
        target_groups=TEENS_AND_KIDS | {"caregiver"},
        needs={"visits", "talking"},
        coverage="radius",
        radius_km=50,
        city="München",
        **at("80331"),
    ),
    offer(
        "beratung-berlin",
        "Beratung für Familien von Inhaftierten in Berlin",
        target_groups={"teen", "young_adult", "caregiver"},
        needs={"talking", "money"},
        languages={"de", "tr", "ar"},
        delivery={"in_person", "online"},
        coverage="states",
        states={"BE"},
    ),
    offer(
        "nummer-gegen-kummer",
        "Nummer gegen Kummer – Kinder- und Jugendtelefon",
        organisation="Nummer gegen Kummer e.V.",
        target_groups=TEENS_AND_KIDS,
        needs={"talking", "school", "crisis"},
        delivery={"phone"},
        coverage="national",
        max_age=21,
        phone="116 111",
    ),
    offer(
        "elterntelefon",
        "Nummer gegen Kummer – Elterntelefon",
        organisation="Nummer gegen Kummer e.V.",
        target_groups={"caregiver"},
        needs={"talking", "school"},
        delivery={"phone"},
        coverage="national",
        phone="0800 111 0 550",
    ),
    offer(
        "telefonseelsorge",
        "TelefonSeelsorge",
        target_groups={"teen", "young_adult", "caregiver", "parent_in_prison"},
        needs={"crisis", "talking"},
        delivery={"phone", "online"},
        coverage="national",
        phone="0800 111 0 111",
    ),
    offer(
        "juki-online",
        "JUKI – Online-Beratung für Kinder und Jugendliche",
        target_groups=TEENS_AND_KIDS,
        needs={"talking", "school"},
        delivery={"online"},
        coverage="online",
    ),
]


@pytest.fixture(scope="module")
def index() -> ReferralIndex:
    return ReferralIndex(DIRECTORY, PRISONS)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@dataclass(frozen=True)
class Case:
    name: str
    postcode: str | None
    role: str | None
    needs: tuple[str, ...] = ()
    q: str | None = None
    age: int | None = None
    lang: str | None = None
    prison: str | None = None
    limit: int = 5
    top: tuple[str, ...] = ()
    reason: dict[str, object] = field(default_factory=dict)
    # The first match's reason as the bot shows it (German), when the case pins it.
    line: str | None = None
    max_km: float | None = None
    absent: tuple[str, ...] = ()
    near: tuple[str, ...] | None = None
    # Whether the fixture has a nationwide offer for this role and age at all.
    fallback: bool = True


CASES = [
    Case(
        "teen in Bielefeld asking about visits gets the visit service near the prison first",
        "33647",
        "teen",
        needs=("visits",),
        top=("besuchsbegleitung-brackwede", "jugendgruppe-bielefeld"),
        reason={"scope": "local", "target_group": "teen", "needs": ("visits",)},
        max_km=5,
        line="4 km · für Jugendliche · Besuche und Kontakt",
        absent=("netzwerk-kvi-nrw", "elternberatung-nrw", "treffpunkt-nuernberg"),
    ),
    Case(
        "teen in Nuremberg asking about visits gets Treffpunkt",
        "90402",
        "teen",
        needs=("visits",),
        top=("treffpunkt-nuernberg",),
        reason={"scope": "local", "needs": ("visits",)},
        max_km=2,
        absent=("familien-muenchen", "besuchsbegleitung-brackwede"),
        line="unter 1 km · für Jugendliche · Besuche und Kontakt",
    ),
    Case(
        "teen in Berlin who wants to talk in Turkish gets the Berlin state-wide service",
        "10997",
        "teen",
        needs=("talking",),
        lang="tr",
        top=("beratung-berlin",),
        reason={"scope": "state", "state": "BE", "language": "tr", "distance_km": None},
        line="in Berlin · für Jugendliche · Darüber reden, Gefühle · auf Türkisch",
    ),
    Case(
        "caregiver in Cologne with money worries gets the Cologne office of the NRW service",
        "50667",
        "caregiver",
        needs=("money",),
        top=("elternberatung-nrw", "netzwerk-kvi-nrw"),
        reason={"scope": "local", "needs": ("money",), "target_group": "caregiver"},
        max_km=2,
        line="unter 1 km · für Familien · Geld und Fahrten",
    ),
    Case(
        "caregiver in Bielefeld asking about release gets the nearer office of the same service",
        "33602",
        "caregiver",
        needs=("release",),
        top=("elternberatung-nrw",),
        reason={"scope": "local", "needs": ("release",)},
        max_km=1,
        line="unter 1 km · für Familien · Entlassung und Rückkehr",
    ),
    Case(
        "child in Munich writing that dad is in jail and they are sad gets talking offers",
        "80331",
        "child",
        q="Papa sitzt im Knast und ich bin voll traurig",
        top=("familien-muenchen", "juki-online", "nummer-gegen-kummer"),
        reason={"scope": "local", "needs": ("talking",), "target_group": "child"},
        line="unter 1 km · für Kinder · Darüber reden, Gefühle",
    ),
    Case(
        "teen in crisis gets the crisis lines first, wherever they are",
        "10115",
        "teen",
        q="ich will nicht mehr leben",
        top=("nummer-gegen-kummer", "telefonseelsorge"),
        reason={"scope": "national", "needs": ("crisis",), "distance_km": None},
        line="bundesweit · für Jugendliche · Krise",
    ),
    Case(
        "without a postcode only nationwide and online offers come",
        None,
        "teen",
        needs=("school",),
        top=("juki-online", "nummer-gegen-kummer"),
        reason={"scope": "online", "needs": ("school",)},
        line="online · für Jugendliche · Schule und Freunde",
        absent=("jugendgruppe-bielefeld", "beratung-berlin"),
    ),
    Case(
        "an 18-year-old is too old for the group for 12 to 17",
        "33647",
        "teen",
        needs=("talking",),
        age=18,
        top=("besuchsbegleitung-brackwede", "familienberatung-bielefeld"),
        line="4 km · für Jugendliche · Darüber reden, Gefühle",
        absent=("jugendgruppe-bielefeld",),
    ),
    Case(
        "a 22-year-old is past the helpline's age range and gets the TelefonSeelsorge",
        None,
        "teen",
        needs=("talking",),
        age=22,
        top=("juki-online", "telefonseelsorge"),
        line="online · für Jugendliche · Darüber reden, Gefühle",
        absent=("nummer-gegen-kummer",),
    ),
    Case(
        "a parent in prison asking about release in Nuremberg gets Treffpunkt",
        "90429",
        "parent_in_prison",
        needs=("release",),
        top=("treffpunkt-nuernberg", "telefonseelsorge"),
        reason={"scope": "local", "target_group": "parent_in_prison", "needs": ("release",)},
        line="4 km · für Inhaftierte · Entlassung und Rückkehr",
    ),
    Case(
        "in Kiel nothing is local: the helplines and online counselling remain",
        "24103",
        "teen",
        needs=("visits",),
        top=("juki-online", "nummer-gegen-kummer", "telefonseelsorge"),
        reason={"scope": "online", "needs": ()},
        line="online · für Jugendliche",
    ),
    Case(
        "a professional in NRW gets the state network for training",
        "47798",
        "professional",
        needs=("training",),
        top=("netzwerk-kvi-nrw",),
        reason={"scope": "state", "state": "NW", "needs": ("training",)},
        line="in Nordrhein-Westfalen · für Fachkräfte · Fortbildung",
        fallback=False,
    ),
    Case(
        "a teen in Nuremberg whose father is in Bielefeld gets offers at both places",
        "90402",
        "teen",
        needs=("visits",),
        prison="jva-bielefeld-brackwede",
        top=("treffpunkt-nuernberg",),
        near=("besuchsbegleitung-brackwede",),
        line="unter 1 km · für Jugendliche · Besuche und Kontakt",
    ),
    Case(
        "near the prison means for the asker's role: a caregiver also gets the state network",
        "90402",
        "caregiver",
        needs=("visits",),
        prison="nw-bielefeld-brackwede",
        top=("treffpunkt-nuernberg",),
        near=("besuchsbegleitung-brackwede", "netzwerk-kvi-nrw"),
        line="unter 1 km · für Familien · Besuche und Kontakt",
    ),
    Case(
        "a service already shown near home is not repeated near the prison",
        "33647",
        "teen",
        needs=("visits",),
        prison="jva-bielefeld-brackwede",
        top=("besuchsbegleitung-brackwede",),
        near=(),
        line="4 km · für Jugendliche · Besuche und Kontakt",
    ),
    Case(
        "a prison without a known place only brings the offers that name it",
        "10115",
        "teen",
        needs=("visits",),
        prison="jva-ohne-adresse",
        line="in Berlin · für Jugendliche",
        near=("treffpunkt-nuernberg",),
    ),
    Case(
        "with limit 1 the single place goes to a nationwide phone line",
        "33647",
        "teen",
        needs=("visits",),
        limit=1,
        top=("nummer-gegen-kummer",),
        line="bundesweit · für Jugendliche",
    ),
    Case(
        "a child near Nuremberg gets the children's helpline rather than only online counselling",
        "90429",
        "child",
        needs=("visits",),
        limit=2,
        # Treffpunkt has no phone number and JUKI would win the tie by name: 116 111 comes.
        top=("treffpunkt-nuernberg", "nummer-gegen-kummer"),
        line="4 km · für Kinder · Besuche und Kontakt",
    ),
]


def _ids(matches: list[Match]) -> list[str]:
    return [m.offer.service_id for m in matches]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_referral(index: ReferralIndex, catalogue: Catalogue, case: Case) -> None:
    result = index.search(
        area=gazetteer.lookup(case.postcode) if case.postcode else None,
        role=case.role,
        age=case.age,
        needs=case.needs,
        text=case.q,
        language=case.lang,
        prison=case.prison,
        limit=case.limit,
    )
    ids = _ids(result.matches)
    assert ids[: len(case.top)] == list(case.top), ids
    assert not set(case.absent) & set(ids), ids
    if case.reason:
        first = result.matches[0].reason
        assert {key: getattr(first, key) for key in case.reason} == case.reason
    if case.line is not None:
        assert reason_line(catalogue, "de", result.matches[0]) == case.line
    if case.max_km is not None:
        assert result.matches[0].distance_km is not None
        assert result.matches[0].distance_km <= case.max_km
    if case.near is not None:
        assert result.prison is not None and case.prison in (
            result.prison.slug,
            result.prison.prison_id,
        )
        assert _ids(result.near_prison) == list(case.near)
    nationwide = any(m.reason.scope in ("national", "online") for m in result.matches)
    assert nationwide == case.fallback, ids


def test_near_prison_reason_names_the_prison_link_and_distance_from_the_prison(index):
    result = index.search(
        area=gazetteer.lookup("90402"),
        role="teen",
        needs=["visits"],
        prison="jva-bielefeld-brackwede",
    )
    (near,) = result.near_prison
    assert near.reason.scope == "near_prison"
    assert near.reason.linked_prison is True
    assert near.reason.needs == ("visits",)
    assert near.distance_km is not None and near.distance_km < 1
    assert result.prison is BRACKWEDE


def test_free_text_needs_are_reported_apart_from_the_buttons(index):
    result = index.search(
        area=gazetteer.lookup("50667"),
        role="caregiver",
        needs=["release"],
        text="wer zahlt die Fahrtkosten?",
    )
    assert result.needs == ("money", "release")
    assert result.needs_from_text == ("money",)
    first = result.matches[0]
    assert first.offer.service_id == "elternberatung-nrw"
    assert first.reason.needs == ("money", "release")
