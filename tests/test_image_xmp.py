"""``birefvid image`` keeps a photo's XMP (keywords, caption, credit, copyright: what a DAM searches by) in PNG, JPEG,
WebP and TIFF cut-outs, without its GPS position, thumbnails or orientation, as it keeps its EXIF."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from birefvid.cli import main

SIZE = (64, 48)  # width, height as shown
KEYWORDS = ["sneaker", "red & white", "Größe 42"]
CAPTION = "Red sneaker on a café table"
CREDIT, RIGHTS = "Studio Nord", "© 2026 Studio Nord"
NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "dc": "http://purl.org/dc/elements/1.1/",
      "photoshop": "http://ns.adobe.com/photoshop/1.0/", "exif": "http://ns.adobe.com/exif/1.0/",
      "tiff": "http://ns.adobe.com/tiff/1.0/", "xmp": "http://ns.adobe.com/xap/1.0/",
      "xmpGImg": "http://ns.adobe.com/xap/1.0/g/img/"}  # fmt: skip


def _packet(private: bool = True) -> bytes:
    """An XMP packet as Lightroom writes one; ``private``: with a GPS position (as attributes and as an element),
    the orientation of a photo stored sideways and a thumbnail."""
    keys = "".join(f"<rdf:li>{k.replace('&', '&amp;')}</rdf:li>" for k in KEYWORDS)
    gps = 'exif:GPSLatitude="51,30.2083N" exif:GPSLongitude="0,7.6667W" tiff:Orientation="6"' if private else ""
    thumbnail = ("<xmp:Thumbnails><rdf:Alt><rdf:li rdf:parseType=\"Resource\"><xmpGImg:format>JPEG</xmpGImg:format>"
                 "<xmpGImg:image>/9j/4AAQSkZJRg==</xmpGImg:image></rdf:li></rdf:Alt></xmp:Thumbnails>")  # fmt: skip
    more = "<exif:GPSAltitude>120/1</exif:GPSAltitude>" + thumbnail if private else ""
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="{NS['rdf']}">
  <rdf:Description rdf:about="" xmlns:dc="{NS['dc']}" xmlns:photoshop="{NS['photoshop']}" xmlns:exif="{NS['exif']}"
    xmlns:tiff="{NS['tiff']}" xmlns:xmp="{NS['xmp']}" xmlns:xmpGImg="{NS['xmpGImg']}"
    photoshop:Credit="{CREDIT}" tiff:Make="Canon" {gps}>
   <dc:subject><rdf:Bag>{keys}</rdf:Bag></dc:subject>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{CAPTION}</rdf:li></rdf:Alt></dc:description>
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{RIGHTS}</rdf:li></rdf:Alt></dc:rights>
   {more}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def _photo(path: Path, xmp: Optional[bytes]) -> None:
    """A JPEG, PNG or TIFF photo with ``xmp`` as Pillow writes it (JPEG APP1, PNG iTXt, TIFF tag 700)."""
    from process_fixtures import scene_frame

    im = Image.fromarray(scene_frame(0, SIZE, False))
    if xmp is None:
        im.save(path)
    elif path.suffix == ".png":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        im.save(path, pnginfo=info)
    elif path.suffix == ".tif":
        im.save(path, tiffinfo={700: xmp})
    else:
        im.save(path, quality=95, xmp=xmp)


def _cut(tmp_path: Path, source: Path, out: str, *options: str) -> Image.Image:
    extra = ["--output", "composite", "--background", "white"] if out.endswith(".jpg") else []
    assert main(["image", str(source), "-o", str(tmp_path / out), *extra, *options, "-q"]) == 0
    im = Image.open(tmp_path / out)
    im.load()  # the file still decodes whole
    return im


def _values(root: ET.Element, prop: str) -> list[str]:
    return [li.text or "" for li in root.iterfind(f".//{prop}//rdf:li", NS)]


def _properties(root: ET.Element, namespace: str) -> list[str]:
    """The properties of ``namespace`` in the packet, as elements or as attributes."""
    found = [el.tag for el in root.iter() if el.tag.startswith("{" + NS[namespace])]
    return found + [name for el in root.iter() for name in el.attrib if name.startswith("{" + NS[namespace])]


@pytest.mark.parametrize("out", ["cut.png", "cut.webp", "white.jpg", "cut.tif"])
@pytest.mark.parametrize("source", ["photo.jpg", "photo.png", "photo.tif"])
def test_keywords_caption_credit_and_rights_are_kept_and_the_position_is_not(tmp_path, red_key, source, out):
    _photo(tmp_path / source, _packet())
    im = _cut(tmp_path, tmp_path / source, out)
    assert im.size == SIZE
    root = ET.fromstring(im.info["xmp"].rstrip(b"\0"))
    assert _values(root, "dc:subject") == KEYWORDS and _values(root, "dc:description") == [CAPTION]
    assert _values(root, "dc:rights") == [RIGHTS]
    description = root.find(".//rdf:Description", NS)
    assert description.get(f"{{{NS['photoshop']}}}Credit") == CREDIT and description.get(f"{{{NS['tiff']}}}Make") == "Canon"
    assert not [p for p in _properties(root, "exif") if p.rsplit("}", 1)[1].startswith("GPS")]  # no position, in any form
    assert f"{{{NS['tiff']}}}Orientation" not in _properties(root, "tiff")  # upright: no viewer turns it again
    assert not _properties(root, "xmpGImg") and root.find(".//xmp:Thumbnails", NS) is None  # nor the original's thumbnail


def test_a_packet_with_nothing_to_leave_out_is_kept_byte_for_byte(tmp_path, red_key):
    _photo(tmp_path / "photo.jpg", _packet(private=False))
    for out in ("cut.png", "cut.webp", "white.jpg", "cut.tif"):
        assert _cut(tmp_path, tmp_path / "photo.jpg", out).info["xmp"] == _packet(private=False)


@pytest.mark.parametrize("out", ["cut.png", "white.jpg", "cut.webp", "cut.tif"])
def test_no_exif_writes_no_xmp_either(tmp_path, red_key, out):
    """A web shop's pictures: no camera, date, keywords or copyright in them (the same photo's cut-out has them)."""
    _photo(tmp_path / "photo.jpg", _packet())
    assert _values(ET.fromstring(_cut(tmp_path, tmp_path / "photo.jpg", out).info["xmp"]), "dc:subject") == KEYWORDS
    assert "xmp" not in _cut(tmp_path, tmp_path / "photo.jpg", "shop_" + out, "--no-exif").info


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_of_a_folder_only_the_photos_with_xmp_get_one(tmp_path, red_key, ext):
    """A photo without XMP gets none, not the one before it in the folder."""
    (tmp_path / "shoot").mkdir()
    _photo(tmp_path / "shoot" / "a.jpg", _packet())
    _photo(tmp_path / "shoot" / "b.jpg", None)
    extra = ["--output", "composite", "--background", "white"] if ext == ".jpg" else []
    assert main(["image", str(tmp_path / "shoot"), "-o", str(tmp_path / "out"), "--ext", ext, *extra, "-q"]) == 0
    with Image.open(tmp_path / "out" / f"a{ext}") as a, Image.open(tmp_path / "out" / f"b{ext}") as b:
        assert _values(ET.fromstring(a.info["xmp"]), "dc:subject") == KEYWORDS and "xmp" not in b.info


@pytest.mark.parametrize("packet, why", [
    (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF", "not well-formed XML"),
    (b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]><x>&b;</x>", "it declares a DTD"),  # an XML bomb's start
])  # fmt: skip
def test_a_damaged_packet_is_left_out_with_a_log_line_and_the_picture_written(tmp_path, red_key, caplog, packet, why):
    _photo(tmp_path / "photo.jpg", packet)
    im = _cut(tmp_path, tmp_path / "photo.jpg", "cut.png")
    assert "xmp" not in im.info and im.size == SIZE
    assert f"photo.jpg: its XMP could not be read ({why}" in caplog.text


def test_a_packet_too_big_for_a_jpeg_segment_is_kept_in_png_and_left_out_of_a_jpeg_with_a_log_line(tmp_path, red_key, caplog):
    big = _packet(private=False).replace(b"</rdf:Description>", b"<dc:source>" + b"x" * 70_000 + b"</dc:source></rdf:Description>")
    _photo(tmp_path / "photo.png", big)
    assert _cut(tmp_path, tmp_path / "photo.png", "cut.png").info["xmp"] == big
    im = _cut(tmp_path, tmp_path / "photo.png", "white.jpg")
    assert "xmp" not in im.info and np.asarray(im).shape == (SIZE[1], SIZE[0], 3)
    assert f"white.jpg: the photo's XMP ({len(big) // 1024} KB) is more than a JPEG's one segment holds" in caplog.text


def test_exif_and_xmp_are_both_kept_and_exif_stays_the_first_app1_segment(tmp_path, red_key):
    """Readers (and the EXIF spec) look for EXIF in the JPEG's first APP1 segment; XMP comes after it."""
    from process_fixtures import scene_frame

    exif = Image.Exif()
    exif[0x010F] = "Canon"
    Image.fromarray(scene_frame(0, SIZE, False)).save(tmp_path / "photo.jpg", quality=95, exif=exif.tobytes(), xmp=_packet())
    im = _cut(tmp_path, tmp_path / "photo.jpg", "white.jpg")
    assert im.getexif().get(0x010F) == "Canon" and _values(ET.fromstring(im.info["xmp"]), "dc:subject") == KEYWORDS
    app1 = [body[:6] for marker, body in im.applist if marker == "APP1"]
    assert app1 == [b"Exif\0\0", b"http:/"]


def test_a_utf16_packet_is_written_as_utf8_which_a_png_itxt_chunk_needs(tmp_path, red_key):
    """XMP may be UTF-16; a PNG's iTXt holds UTF-8 only, so the packet is re-serialised (and its NUL bytes kept)."""
    _photo(tmp_path / "photo.jpg", _packet(private=False).decode("utf-8").encode("utf-16"))
    im = _cut(tmp_path, tmp_path / "photo.jpg", "cut.png")
    im.info["xmp"].decode("utf-8")
    assert _values(ET.fromstring(im.info["xmp"]), "dc:subject") == KEYWORDS


def test_a_phones_pointers_to_data_the_cut_out_has_not_are_left_out():
    """A Pixel's motion photo (its video appended to the JPEG), an Ultra HDR gain map and extended XMP are named in
    the packet; the cut-out has none of them, and a viewer following the pointers would read past its end."""
    from birefvid.io.xmp import kept_xmp

    camera, container, item = ("http://ns.google.com/photos/1.0/camera/", "http://ns.google.com/photos/1.0/container/",
                               "http://ns.google.com/photos/1.0/container/item/")  # fmt: skip
    packet = f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS['rdf']}">
 <rdf:Description rdf:about="" xmlns:GCamera="{camera}" xmlns:Container="{container}" xmlns:Item="{item}"
   xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmlns:dc="{NS['dc']}"
   GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" GCamera:MotionPhotoPresentationTimestampUs="968644"
   hdrgm:Version="1.0" xmpNote:HasExtendedXMP="0123456789ABCDEF0123456789ABCDEF">
  <Container:Directory><rdf:Seq>
   <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary"/></rdf:li>
   <rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="2424521"/></rdf:li>
  </rdf:Seq></Container:Directory>
  <dc:subject><rdf:Bag><rdf:li>sneaker</rdf:li></rdf:Bag></dc:subject>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""
    root = ET.fromstring(kept_xmp(packet.encode()))
    names = [name for el in root.iter() for name in (el.tag, *el.attrib)]
    assert not [n for n in names if n.startswith(("{" + camera, "{" + container, "{" + item, "{http://ns.adobe.com/hdr-gain-map/",
                                                  "{http://ns.adobe.com/xmp/note/"))]  # fmt: skip
    assert _values(root, "dc:subject") == ["sneaker"]


def test_a_packet_nested_too_deep_is_left_out_with_a_log_line_and_the_picture_written(tmp_path, red_key, caplog):
    """A damaged or hostile packet nested thousands deep (XMP nests a few levels) must not end the run with Python's
    recursion limit: the cut-out is written without it, as for any packet that cannot be read."""
    deep = b"<dc:source>" * 5000 + b"x" + b"</dc:source>" * 5000
    _photo(tmp_path / "photo.png", _packet().replace(b"</rdf:Description>", deep + b"</rdf:Description>"))
    for options in ((), ("--srgb",)):
        im = _cut(tmp_path, tmp_path / "photo.png", f"cut{len(options)}.png", *options)
        assert "xmp" not in im.info and im.size == SIZE
    assert "photo.png: its XMP could not be read (it nests elements deeper than" in caplog.text


def test_a_drones_position_in_its_own_namespace_is_left_out():
    """DJI drones write the position in XMP of their own (drone-dji:GpsLatitude, GpsLongitude, AbsoluteAltitude), not in
    exif:GPS*; a cut-out must not carry it either. The flight's other data (the gimbal's angles) stays."""
    from birefvid.io.xmp import kept_xmp

    dji = "http://www.dji.com/drone-dji/1.0/"
    packet = f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS['rdf']}">
 <rdf:Description rdf:about="" xmlns:drone-dji="{dji}" xmlns:dc="{NS['dc']}" drone-dji:GpsLatitude="+51.500729"
   drone-dji:GpsLongitude="-0.124625" drone-dji:GpsLongtitude="-0.124625" drone-dji:AbsoluteAltitude="+80.10"
   drone-dji:GimbalPitchDegree="-90.00">
  <dc:subject><rdf:Bag><rdf:li>sneaker</rdf:li></rdf:Bag></dc:subject>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""
    description = ET.fromstring(kept_xmp(packet.encode())).find(".//rdf:Description", NS)
    assert sorted(name.rsplit("}", 1)[1] for name in description.attrib if name.startswith("{" + dji)) == ["GimbalPitchDegree"]
    assert _values(ET.fromstring(kept_xmp(packet.encode())), "dc:subject") == ["sneaker"]


def test_paths_to_files_on_the_authors_machine_are_left_out():
    """Photoshop names a placed or linked file by its path (xmpMM:Ingredients' stRef:filePath: the user's name and
    folders); the cut-out shares no file with it. The document's ids, and what it was derived from, stay."""
    from birefvid.io.xmp import kept_xmp

    mm, ref = "http://ns.adobe.com/xap/1.0/mm/", "http://ns.adobe.com/xap/1.0/sType/ResourceRef#"
    packet = f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{NS['rdf']}">
 <rdf:Description rdf:about="" xmlns:xmpMM="{mm}" xmlns:stRef="{ref}" xmpMM:DocumentID="xmp.did:0a1b">
  <xmpMM:Ingredients><rdf:Bag><rdf:li rdf:parseType="Resource">
   <stRef:filePath>/Users/alice/Clients/Acme/logo.ai</stRef:filePath><stRef:documentID>xmp.did:77</stRef:documentID>
  </rdf:li><rdf:li stRef:filePath="C:\\Users\\alice\\Desktop\\shadow.psd" stRef:documentID="xmp.did:78"/></rdf:Bag></xmpMM:Ingredients>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""
    kept = kept_xmp(packet.encode())
    assert b"alice" not in kept
    root = ET.fromstring(kept)
    assert [el.text for el in root.iter(f"{{{ref}}}documentID")] == ["xmp.did:77"]
    assert root.find(".//rdf:Description", NS).get(f"{{{mm}}}DocumentID") == "xmp.did:0a1b"
