"""A photo's XMP packet as its cut-out carries it: keywords, caption, credit, copyright and the rest of what a DAM
(Lightroom, Photo Mechanic, a shop's asset system) searches by, kept; under the same rule as its EXIF (``io.exif``),
the GPS position, embedded thumbnails and previews, the orientation (the pixels are written upright) and what no
longer holds for the cut-out (the stored size, pointers to data appended to the original file) left out.

A packet with nothing to leave out is kept byte for byte. One that is not well-formed XML, that declares a DTD
(XMP never does; entity expansion is how XML bombs work) or that nests deeper than ``MAX_DEPTH``, is dropped with a
log line: the cut-out is still written."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional
from xml.dom import Node, minidom
from xml.parsers import expat

log = logging.getLogger(__name__)

EXIF_NS = "http://ns.adobe.com/exif/1.0/"
TIFF_NS = "http://ns.adobe.com/tiff/1.0/"
XMP_NS = "http://ns.adobe.com/xap/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS_NS = "http://www.w3.org/2000/xmlns/"
PHOTOSHOP_NS = "http://ns.adobe.com/photoshop/1.0/"
# whole namespaces describing data appended to the original file, which the cut-out does not have: Google's
# container directory (a motion photo's video, a portrait's depth map, an Ultra HDR gain map) and the gain map's own
STALE_NAMESPACES = frozenset({"http://ns.google.com/photos/1.0/container/", "http://ns.google.com/photos/1.0/container/item/",
                              "http://ns.adobe.com/hdr-gain-map/1.0/"})  # fmt: skip
GOOGLE = "http://ns.google.com/photos/1.0/"
DJI = "http://www.dji.com/drone-dji/1.0/"  # a DJI drone's flight record: its position is here, not in exif:GPS*
# the deepest nesting kept: real packets nest a few levels (a struct in an array in a property); the DOM's walks are
# recursive, so a deeper (damaged or hostile) packet would end the run at Python's recursion limit
MAX_DEPTH = 100
STALE_PROPERTIES = frozenset({
    (TIFF_NS, "Orientation"),  # the pixels are written upright: a viewer must not turn them again
    (TIFF_NS, "ImageWidth"), (TIFF_NS, "ImageLength"), (EXIF_NS, "PixelXDimension"), (EXIF_NS, "PixelYDimension"),  # the original's size
    (XMP_NS, "Thumbnails"),  # the original, background and all
    (GOOGLE + "image/", "Data"), (GOOGLE + "depthmap/", "Data"), (GOOGLE + "depthmap/", "Confidence"),  # the same, and its depth
    ("http://ns.adobe.com/xmp/note/", "HasExtendedXMP"),  # extended XMP (JPEG segments Pillow does not read) is not carried
    # a placed or linked file's path on the author's machine (Photoshop's xmpMM:Ingredients): their name and folders
    ("http://ns.adobe.com/xap/1.0/sType/ResourceRef#", "filePath"),
    *((GOOGLE + "camera/", name) for name in ("MotionPhoto", "MotionPhotoVersion", "MotionPhotoPresentationTimestampUs",
                                               "MicroVideo", "MicroVideoVersion", "MicroVideoOffset", "MicroVideoPresentationTimestampUs")),
})  # fmt: skip


class XmpError(ValueError):
    """A packet that is not XMP this module keeps: not well-formed XML, one declaring a DTD or nested too deep."""


def cutout_xmp(im: Any) -> Optional[bytes]:
    """The XMP packet of the opened picture ``im`` (Pillow's ``info["xmp"]``: PNG iTXt, JPEG APP1, WebP, TIFF tag 700,
    AVIF, HEIC with pillow-heif) for its cut-out (``kept_xmp``), or None when it has none, or none worth keeping."""
    packet = im.info.get("xmp")
    if not packet:
        return None
    try:
        return kept_xmp(packet.encode("utf-8") if isinstance(packet, str) else bytes(packet))
    except XmpError as e:
        log.warning("%s: its XMP could not be read (%s); the cut-out is written without it", getattr(im, "filename", None) or "picture", e)
        return None


def kept_xmp(packet: bytes) -> Optional[bytes]:
    """``packet`` less its GPS position (a drone's too), thumbnails, orientation and stale properties (see the module), as UTF-8;
    the packet as it was when it holds none of them, None when removing them leaves nothing. Raises ``XmpError``."""
    wide = packet[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in packet[:4]  # UTF-16 or -32: NULs are its bytes
    packet = packet if wide else packet.rstrip(b"\0")  # a NUL terminator some writers add is no part of the XML
    if not _holds_unwanted(packet) and _is_utf8(packet):  # PNG's iTXt holds UTF-8 only
        return packet  # as it was, byte for byte; and no DOM built (a 54 KB Lightroom packet: 0.5 ms, not 19)
    document = _parsed(packet)
    _strip(document.documentElement)
    if not _has_properties(document.documentElement):
        return None  # a position or an orientation alone
    return _serialised(document)


def marked_srgb(packet: bytes) -> bytes:
    """``kept_xmp``'s ``packet`` for pixels converted to sRGB and written untagged (``image --srgb``), as
    ``io.exif.marked_srgb`` marks the EXIF: ``exif:ColorSpace`` set to 1 (sRGB) and ``photoshop:ICCProfile`` (the
    name of a profile the output no longer has, "Display P3") left out. The packet as it was when it has neither."""
    try:
        document = _parsed(packet)
    except XmpError:
        return packet  # read once already: kept_xmp made it
    changed = False
    for element in [document.documentElement, *document.documentElement.getElementsByTagName("*")]:
        if element.hasAttributeNS(PHOTOSHOP_NS, "ICCProfile"):
            element.removeAttributeNS(PHOTOSHOP_NS, "ICCProfile")
            changed = True
        if element.hasAttributeNS(EXIF_NS, "ColorSpace") and element.getAttributeNS(EXIF_NS, "ColorSpace").strip() != "1":
            element.setAttributeNS(EXIF_NS, element.getAttributeNodeNS(EXIF_NS, "ColorSpace").name, "1")
            changed = True
        if element.namespaceURI == PHOTOSHOP_NS and element.localName == "ICCProfile" and element.parentNode is not None:
            element.parentNode.removeChild(element)
            changed = True
        elif element.namespaceURI == EXIF_NS and element.localName == "ColorSpace" and _text(element).strip() != "1":
            while element.firstChild is not None:
                element.removeChild(element.firstChild)
            element.appendChild(document.createTextNode("1"))
            changed = True
    return _serialised(document) if changed else packet


def _is_utf8(packet: bytes) -> bool:
    try:
        packet.decode("utf-8")
        return True
    except UnicodeDecodeError:  # UTF-16 or -32, which XMP allows
        return False


def _text(element: minidom.Element) -> str:
    return "".join(node.data for node in element.childNodes if node.nodeType == Node.TEXT_NODE)


def _serialised(document: minidom.Document) -> bytes:
    """The packet's <?xpacket?> wrapper and root as they are now, as UTF-8; no <?xml?> declaration (XMP has none)."""
    return "\n".join(node.toxml() for node in document.childNodes).encode("utf-8")


def _holds_unwanted(packet: bytes) -> bool:
    """Whether ``packet`` holds a property ``kept_xmp`` leaves out, found by one streaming pass (expat, no DOM) that
    also refuses what ``_parsed`` would: a DTD, XML that is not well-formed. Raises ``XmpError``."""
    found = False

    def element(name: str, attributes: dict[str, str]) -> None:
        nonlocal found
        found = found or any(_unwanted(*_split(key)) for key in (name, *attributes))

    scanner = _guarded_parser(element, namespace_separator=" ")  # names as "uri local"; xmlns declarations are no attributes
    _parse(scanner, packet)
    return found


def _split(name: str) -> tuple[Optional[str], str]:
    namespace, _, local = name.rpartition(" ")
    return namespace or None, local


def _guarded_parser(on_element: Optional[Callable[[str, dict[str, str]], None]] = None, **options: str) -> "expat.XMLParserType":
    """An expat parser that refuses a DTD (XMP never has one, and entity expansion is how XML bombs work) and elements
    nested deeper than ``MAX_DEPTH``; ``on_element`` is called with each element's name and attributes."""
    parser = expat.ParserCreate(**options)
    depth = 0

    def refuse_dtd(*_: object) -> None:
        raise XmpError("it declares a DTD, which XMP never does")

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise XmpError(f"it nests elements deeper than {MAX_DEPTH}, which XMP never does")
        if on_element is not None:
            on_element(name, attributes)

    def end(_: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    return parser


def _parse(parser: "expat.XMLParserType", packet: bytes) -> None:
    try:
        parser.Parse(packet, True)
    except (expat.ExpatError, LookupError, ValueError) as e:  # LookupError: an unknown encoding declared
        raise e if isinstance(e, XmpError) else XmpError(f"not well-formed XML: {e}") from e


def _parsed(packet: bytes) -> minidom.Document:
    """``packet`` as a DOM, namespace-aware (prefixes kept as written), once it is known to declare no DTD."""
    _parse(_guarded_parser(), packet)
    try:
        return minidom.parseString(packet)
    except (expat.ExpatError, LookupError, ValueError) as e:
        raise XmpError(f"not well-formed XML: {e}") from e


def _unwanted(namespace: Optional[str], name: Optional[str]) -> bool:
    """Whether the property ``namespace``:``name`` is left out of a cut-out's XMP."""
    if namespace == EXIF_NS and name and name.startswith("GPS"):  # exif:GPSLatitude..., in a location struct too
        return True
    if namespace == DJI and name and (name.startswith("Gps") or name == "AbsoluteAltitude"):  # GpsLongtitude too (sic)
        return True
    return namespace in STALE_NAMESPACES or (namespace, name) in STALE_PROPERTIES


def _strip(element: minidom.Element) -> bool:
    """Unwanted properties removed from ``element`` and below, as elements or as attributes (RDF's short form);
    True when any was."""
    removed = False
    for (namespace, name) in list(element.attributes.keysNS()):
        if namespace != XMLNS_NS and _unwanted(namespace, name):
            element.removeAttributeNS(namespace, name)
            removed = True
    for child in list(element.childNodes):
        if child.nodeType != Node.ELEMENT_NODE:
            continue
        if _unwanted(child.namespaceURI, child.localName):
            before = child.previousSibling  # its line's indentation goes with it
            if before is not None and before.nodeType == Node.TEXT_NODE and not before.data.strip():
                element.removeChild(before)
            element.removeChild(child)
            removed = True
        elif _strip(child):
            removed = True
    return removed


def _has_properties(root: minidom.Element) -> bool:
    """Whether any ``rdf:Description`` under ``root`` still holds a property (an element or a non-RDF attribute)."""
    for description in root.getElementsByTagNameNS(RDF_NS, "Description"):
        if any(child.nodeType == Node.ELEMENT_NODE for child in description.childNodes):
            return True
        if any(namespace not in (XMLNS_NS, RDF_NS) for namespace, _ in description.attributes.keysNS()):
            return True
    return False
