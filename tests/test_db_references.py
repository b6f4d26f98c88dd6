"""Issue 14 item 12: image references match what a user types (case-insensitive, `-`/`_`/space
alike, suffix optional; exact, then prefix, then substring) and an ambiguous one names the
candidates; on SQLite and PostgreSQL."""

import pytest

from db.errors import NotFound
from db.images import find_image
from tests.fixtures.databases import add_image

pytestmark = pytest.mark.integration


def _add(catalog, name, role, title=None):
    image_id = add_image(catalog, name, role)
    if title is not None:
        from db.models import Image

        with catalog.session() as session:
            session.get(Image, image_id).title = title
    return image_id


def test_references_match_what_a_user_types(catalog):
    night = _add(catalog, "vangogh_starry_night", "style", title="The Starry Night")
    tuebingen = _add(catalog, "Tuebingen-Neckarfront", "content")
    wheat = _add(catalog, "wheat-field", "style")
    with catalog.reader() as session:
        for typed, expected in (("starry-night", night), ("STARRY NIGHT", night), ("vangogh_starry_night.png", night),
                                ("tuebingen", tuebingen), ("neckar", tuebingen), ("wheat", wheat),
                                ("the starry", night),
                                # the path a user just gave to `catalog add` names its file
                                ("../shared/data/style/vangogh_starry_night.png", night),
                                ("/home/me/photos/Tuebingen-Neckarfront.png", tuebingen)):
            assert find_image(session, typed).id == expected, typed


def test_an_ambiguous_reference_names_its_candidates_and_role_breaks_ties(catalog):
    a = _add(catalog, "harbour-day", "content")
    b = _add(catalog, "harbour-night", "content")
    s = _add(catalog, "harbour-painting", "style")
    with catalog.reader() as session:
        with pytest.raises(NotFound, match=rf"ambiguous: it matches {a} \(Harbour-Day, content\), {b} "):
            find_image(session, "harbour")
        assert find_image(session, "harbour", role="style").id == s
        assert find_image(session, "harbour-day").id == a  # an exact name beats the prefixes
        with pytest.raises(NotFound, match="no image matches 'boat'"):
            find_image(session, "boat")
