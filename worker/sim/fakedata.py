"""Deterministic fake content (names, scores, posts) derived from ids.

The same id always yields the same data, so repeated polls agree with each other and
tests can compare answers across calls without storing generated records.
"""

from __future__ import annotations

import functools
import hashlib
import random
import uuid

_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-4c59-9a1e-0d2b8c7f5e31")
_FIRST = ("Jane", "Sam", "Priya", "Lukas", "Maria", "Kenji", "Amara", "Tom", "Elena", "Omar", "Nina", "Raj")
_LAST = ("Marketer", "Builder", "Okafor", "Schmidt", "Rossi", "Tanaka", "Silva", "Novak", "Haddad", "Berg")
_TITLES = ("VP Marketing", "Head of Growth", "CMO", "Demand Gen Lead", "Founder", "Product Marketing Manager")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay")


def rng_for(*parts: str) -> random.Random:
    """A private RNG seeded from the given strings."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def derived_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


@functools.lru_cache(maxsize=65536)
def creator_name(creator_id: str) -> str:
    """Cached: starts and results views name every creator (profile_url twice), and each name seeds
    an RNG (about 12% of the simulator's CPU in the pipeline bench, whose machine it shares with the
    worker it stands in for)."""
    rng = rng_for("name", creator_id)
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def profile_url(creator_id: str) -> str:
    slug = creator_name(creator_id).lower().replace(" ", "-")
    return f"https://www.linkedin.com/in/{slug}-{creator_id[:6]}/"


def enrichment_metrics(creator_id: str) -> dict[str, float | int]:
    rng = rng_for("enrich", creator_id)
    return {
        "followers_count": rng.randint(1_000, 250_000),
        "median_posts_per_month": rng.randint(1, 30),
        "engagement_rate": round(rng.uniform(0.5, 6.0), 2),
    }


def title(seed: str) -> str:
    return rng_for("title", seed).choice(_TITLES)


def company(seed: str) -> str:
    return rng_for("company", seed).choice(_COMPANIES)


def person(seed: str) -> str:
    rng = rng_for("person", seed)
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)[0]}."
