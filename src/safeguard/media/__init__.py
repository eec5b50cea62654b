"""Media: sniffing, safe decoding, and the lazily-decoded form that signal types compute from."""

from safeguard.media.decode import LumaPlane, Media, decode_image, sniff_media_type

__all__ = ["LumaPlane", "Media", "decode_image", "sniff_media_type"]
