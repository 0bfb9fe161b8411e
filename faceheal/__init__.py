"""faceheal: restore damaged faces in photographs with a two-stage semantic-guided generator."""
__version__ = "0.1.0"


def restore_image(*args, **kwargs):
    """Restore one in-memory photo (see `faceheal.pipeline.restore_image`)."""
    from faceheal.pipeline import restore_image as _restore_image

    return _restore_image(*args, **kwargs)
