from models.schemas import SCHEMA_DIR, render


def test_committed_input_schemas_are_current() -> None:
    for filename, text in render().items():
        committed = SCHEMA_DIR / filename
        assert committed.exists(), f"{committed} is missing: run `python -m models.schemas`"
        assert committed.read_text() == text, f"{committed} is stale: run `python -m models.schemas`"
