"""A secret stored encrypted (kernel.secrets.EncryptedTextField) is never shown: not on a detail page,
not as a list column, not in an API response (write-only)."""

from django.apps import apps

from tarifa.web import display, registry


def _secret_fields():
    return {(m, f.name) for m in apps.get_models() for f in m._meta.concrete_fields if getattr(f, "secret", False)}


def test_there_are_secrets_to_hide():
    assert _secret_fields(), "no EncryptedTextField in any model: this suite checks nothing"


def test_no_screen_shows_a_secret():
    shown = []
    for screens in registry.all_screens():
        secret = {name for model, name in _secret_fields() if model is screens.model}
        visible = set(display.detail_field_names(screens.model, screens.detail_fields)) | set(screens.columns)
        shown += [f"{screens.model._meta.label}.{n}" for n in secret & visible]
    assert not shown, f"secrets shown on screens: {shown}"


def test_no_api_serializer_reads_a_secret():
    from tarifa.web.api import router

    readable = []
    for _prefix, viewset, _basename in router.registry:
        serializer_class = getattr(viewset, "serializer_class", None)
        model = getattr(getattr(serializer_class, "Meta", None), "model", None)
        if model is None:
            continue
        secret = {name for m, name in _secret_fields() if m is model}
        for name, field in serializer_class().fields.items():
            source = field.source or name
            if source in secret and not field.write_only:
                readable.append(f"{viewset.__name__}.{name}")
    assert not readable, f"secrets readable through the API: {readable}"
