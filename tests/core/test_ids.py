import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import (
    BINANCE_CLIENT_ID_RE,
    MAX_GENERATION,
    ClientIdSequence,
    GenerationProof,
    IdFactory,
    ProofKind,
    Role,
    client_order_id,
    intent_digest,
    parse_client_order_id,
)

prefixes = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=1,
    max_size=8,
)
intent_ids = st.text(min_size=1, max_size=200)
roles = st.sampled_from(list(Role))
generations = st.integers(min_value=0, max_value=MAX_GENERATION)


@given(prefixes, intent_ids, roles, generations)
def test_client_order_id_matches_binance_format(prefix, intent_id, role, generation):
    coid = client_order_id(prefix, intent_id, role, generation)
    assert len(coid) <= 36
    assert BINANCE_CLIENT_ID_RE.match(coid)


@given(prefixes, intent_ids, roles, generations)
def test_client_order_id_is_stable_and_parses_back(prefix, intent_id, role, generation):
    coid = client_order_id(prefix, intent_id, role, generation)
    assert coid == client_order_id(prefix, intent_id, role, generation)
    info = parse_client_order_id(coid, prefix)
    assert info.ours
    assert info.role is role
    assert info.generation == generation
    assert info.intent_digest == intent_digest(intent_id)
    assert info.belongs_to(intent_id)


@given(prefixes, intent_ids, intent_ids, roles)
def test_distinct_intents_get_distinct_ids(prefix, a, b, role):
    if a != b:
        assert client_order_id(prefix, a, role) != client_order_id(prefix, b, role)


@given(prefixes, intent_ids, roles, generations, generations)
def test_generations_give_distinct_ids(prefix, intent_id, role, g1, g2):
    if g1 != g2:
        assert client_order_id(prefix, intent_id, role, g1) != client_order_id(
            prefix, intent_id, role, g2
        )


def test_roles_give_distinct_ids():
    ids = {client_order_id("sc", "i-1", role) for role in Role}
    assert len(ids) == len(Role)


def test_known_value_is_pinned():
    # Pinned so that an accidental format change (which would orphan every live order after an
    # upgrade) fails loudly.
    assert (
        client_order_id("sc", "i-00000001", Role.ENTRY, 0)
        == "sc-E-" + intent_digest("i-00000001") + "-0"
    )
    assert intent_digest("i-00000001") == "5c2be389d27e2f48"


@pytest.mark.parametrize(
    "coid",
    [
        "LJ9R4QZDihCaS8UAOOLpgW",  # Binance-generated
        "x-xcKtGhcu1234",  # ccxt broker tag
        "autoclose-1234567",  # liquidation
        "adl_autoclose",
        "other-E-5c2be389d27e2f48-0",  # someone else's prefix, our shape
        "sc-E-5c2be389d27e2f48-01",  # leading zero: not a canonical generation
        "sc-Q-5c2be389d27e2f48-0",  # unknown role
        "sc-E-5C2BE389D27E2F48-0",  # upper-case digest
        "",
    ],
)
def test_foreign_ids_are_not_ours(coid):
    info = parse_client_order_id(coid, "sc")
    assert not info.ours
    assert info.role is None
    assert info.generation is None


@given(st.text(max_size=60))
def test_parse_is_total(text):
    info = parse_client_order_id(text, "sc")
    assert info.raw == text


@pytest.mark.parametrize("prefix", ["", "toolong123", "sc-", "s c", "é"])
def test_bad_prefix_is_rejected(prefix):
    with pytest.raises(CoreValueError) as exc:
        client_order_id(prefix, "i-1", Role.ENTRY)
    assert exc.value.field == "prefix"


def test_bad_generation_and_intent_rejected():
    with pytest.raises(CoreValueError, match="generation"):
        client_order_id("sc", "i-1", Role.ENTRY, -1)
    with pytest.raises(CoreValueError, match="generation"):
        client_order_id("sc", "i-1", Role.ENTRY, MAX_GENERATION + 1)
    with pytest.raises(CoreValueError, match="intent_id"):
        client_order_id("sc", "", Role.ENTRY)


def test_sequence_advances_only_with_proof_about_current_id():
    seq = ClientIdSequence("sc", "i-7", Role.ENTRY)
    first = seq.current
    stale = GenerationProof(
        client_order_id="sc-E-0000000000000000-0", kind=ProofKind.ABSENT, evidence="not_found_x2"
    )
    with pytest.raises(CoreValueError, match="proof"):
        seq.advance(stale)
    nxt = seq.advance(GenerationProof(first, ProofKind.ABSENT, "not_found_x2"))
    assert nxt.generation == 1
    assert nxt.current != first
    # The proof for generation 0 cannot advance generation 1: each new id needs its own proof.
    with pytest.raises(CoreValueError):
        nxt.advance(GenerationProof(first, ProofKind.TERMINAL, "status_canceled"))


def test_sequence_generation_cap():
    seq = ClientIdSequence("sc", "i-7", Role.SL, MAX_GENERATION)
    with pytest.raises(CoreValueError, match="generation"):
        seq.advance(GenerationProof(seq.current, ProofKind.TERMINAL, "status_expired"))


def test_id_factory_is_deterministic_per_seed():
    a = IdFactory(random.Random(42))
    b = IdFactory(random.Random(42))
    ids_a = [a.new_intent_id(), a.new_correlation_id(), a.new_intent_id()]
    ids_b = [b.new_intent_id(), b.new_correlation_id(), b.new_intent_id()]
    assert ids_a == ids_b
    assert len(set(ids_a)) == 3
    assert ids_a[0].startswith("i-")
    assert ids_a[1].startswith("c-")
    assert IdFactory(random.Random(43)).new_intent_id() != ids_a[0]


def test_id_factory_counter_mode():
    f = IdFactory()
    assert f.new_intent_id() == "i-00000001"
    assert f.new_correlation_id() == "c-00000002"


def test_ids_config_validates_prefix():
    from scalper.core.ids import IdsConfig

    assert IdsConfig().prefix == "sc"
    assert IdsConfig("bot7").prefix == "bot7"
    with pytest.raises(CoreValueError) as exc:
        IdsConfig("bad-prefix")
    assert exc.value.field == "prefix"
