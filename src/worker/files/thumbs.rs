//! Thumbnails: PocketBase's size syntax (`WxH` crop-to-fill centred, `WxHt`/`WxHb` anchored
//! top/bottom, `WxHf` fit inside, `0xH`/`Wx0` keep the aspect ratio), which sizes a field
//! allows (its `thumbs` plus `100x100`), the resizing itself, and [`ThumbGate`], which makes
//! concurrent requests for one thumbnail generate it once and bounds how many run at a time.
//!
//! Memory is bounded twice: one generation holds at most [`MAX_DECODE_ALLOC_BYTES`] of pixels
//! (checked from the header before anything is allocated, so a decompression bomb — a tiny
//! file declaring huge dimensions — is refused at once), and at most one generation per CPU
//! runs, so a worker never holds more than CPUs × that for thumbnails.
//!
//! [`generate`] is CPU work on bytes already in memory: callers run it on the blocking pool,
//! never on an async thread. This module does not read or write storage.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};

use super::KeyLocks;

/// The size every image field allows, whatever its `thumbs` list says.
pub const ALWAYS_ALLOWED: &str = "100x100";
/// Largest width or height of a thumbnail, in pixels.
const MAX_THUMB_SIDE_PX: u32 = 10_000;
/// Largest width or height of a source image that is decoded, in pixels.
const MAX_SOURCE_SIDE_PX: u32 = 16_384;
/// Most memory one generation may use for pixels, in bytes: the decoder's allocations, and the
/// resize's intermediate buffer. Holds a 48-megapixel RGB photo; bigger images are served as
/// they are.
pub const MAX_DECODE_ALLOC_BYTES: u64 = 192 * 1024 * 1024;
/// Bytes per pixel of the resize's intermediate buffer (four f32 channels).
const RESIZE_BYTES_PER_PX: u64 = 16;
/// Largest original a thumbnail is made from, in bytes: the source is decoded in memory, so
/// bigger images are served as they are.
pub const MAX_SOURCE_BYTES: u64 = 40 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Crop to fill, centred.
    Center,
    Top,
    Bottom,
    /// Fit inside the box, no crop.
    Fit,
    /// One side is 0: scale to the other, keeping the aspect ratio.
    Aspect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    pub mode: Mode,
}

/// Parses `WxH[t|b|f]`; `0x0`, junk and oversized sides are `None`.
pub fn parse(text: &str) -> Option<Spec> {
    let (body, suffix) = match text.as_bytes().last()? {
        b't' | b'b' | b'f' => text.split_at(text.len() - 1),
        _ => (text, ""),
    };
    let (w, h) = body.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    let (width, height): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    if (width == 0 && height == 0) || width > MAX_THUMB_SIDE_PX || height > MAX_THUMB_SIDE_PX {
        return None;
    }
    let mode = match (suffix, width == 0 || height == 0) {
        (_, true) if suffix.is_empty() => Mode::Aspect,
        (_, true) => return None,
        ("t", _) => Mode::Top,
        ("b", _) => Mode::Bottom,
        ("f", _) => Mode::Fit,
        _ => Mode::Center,
    };
    Some(Spec { width, height, mode })
}

/// Whether a field with `thumbs` allows the size `asked`.
pub fn allowed(thumbs: &[String], asked: &str) -> bool {
    asked == ALWAYS_ALLOWED || thumbs.iter().any(|t| t == asked)
}

/// The image formats thumbnails are made for, by sniffed type.
pub fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("decoding the image: {0}")]
    Image(#[from] image::ImageError),
    #[error("reading the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("resizing {width}x{height} to {spec_width}x{spec_height} would need more than {MAX_DECODE_ALLOC_BYTES} bytes")]
    TooBig { width: u32, height: u32, spec_width: u32, spec_height: u32 },
}

fn scaled(side: u32, num: u32, den: u32) -> u32 {
    ((u64::from(side) * u64::from(num) + u64::from(den) / 2) / u64::from(den.max(1))).clamp(1, u64::from(MAX_THUMB_SIDE_PX)) as u32
}

/// Resizes `img` as `spec` says.
pub fn resize(img: &DynamicImage, spec: Spec) -> DynamicImage {
    let (ow, oh) = (img.width().max(1), img.height().max(1));
    let (w, h) = (spec.width, spec.height);
    let filter = FilterType::Lanczos3;
    match spec.mode {
        Mode::Aspect if w == 0 => img.resize_exact(scaled(ow, h, oh), h, filter),
        Mode::Aspect => img.resize_exact(w, scaled(oh, w, ow), filter),
        Mode::Fit => img.resize(w, h, filter),
        Mode::Center => img.resize_to_fill(w, h, filter),
        Mode::Top | Mode::Bottom => {
            // Scale so the box is covered, then crop the excess from one end.
            let cover_w = u64::from(w) * u64::from(oh) >= u64::from(h) * u64::from(ow);
            let (nw, nh) = if cover_w { (w, scaled(oh, w, ow).max(h)) } else { (scaled(ow, h, oh).max(w), h) };
            let big = img.resize_exact(nw, nh, filter);
            let x = (nw - w) / 2;
            let y = if spec.mode == Mode::Top { 0 } else { nh - h };
            big.crop_imm(x, y, w, h)
        }
    }
}

/// A bound on the resize's intermediate buffer: the image crate scales the height first, into
/// a buffer as wide as the source and as tall as the (covering) target, four f32 per pixel.
fn resize_bytes(width: u32, height: u32, spec: Spec) -> u64 {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let (sw, sh) = (u64::from(spec.width), u64::from(spec.height));
    // The tallest the target gets in any mode: covering a box scales up to the larger ratio.
    let by_width = if sw == 0 { 0 } else { sw * h / w + 1 };
    let target_h = sh.max(by_width);
    w.saturating_mul(target_h).saturating_mul(RESIZE_BYTES_PER_PX)
}

/// Decodes `source` (of `format`), resizes it and encodes the thumbnail in the same format.
/// Blocking CPU work.
pub fn generate(source: &[u8], format: ImageFormat, spec: Spec) -> Result<Vec<u8>, ThumbError> {
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE_PX);
    limits.max_image_height = Some(MAX_SOURCE_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_ALLOC_BYTES);
    reader.limits(limits);
    let img = reader.decode()?;
    if resize_bytes(img.width(), img.height(), spec) > MAX_DECODE_ALLOC_BYTES {
        return Err(ThumbError::TooBig { width: img.width(), height: img.height(), spec_width: spec.width, spec_height: spec.height });
    }
    let thumb = resize(&img, spec);
    // Each encoder takes the pixel layouts it supports: JPEG has no alpha.
    let thumb = match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(thumb.to_rgb8()),
        _ => DynamicImage::ImageRgba8(thumb.to_rgba8()),
    };
    let mut out = Cursor::new(Vec::new());
    thumb.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// One generation per thumbnail key at a time, and at most one per CPU at once (each may hold
/// up to [`MAX_DECODE_ALLOC_BYTES`]; more would only queue for the CPUs while holding memory).
pub struct ThumbGate {
    pub locks: KeyLocks,
    pub permits: tokio::sync::Semaphore,
    /// Requests that found the same thumbnail being generated and waited for it instead of
    /// generating it too (shown by the test routes' stats).
    waited: AtomicU64,
    /// Test-only: [`TEST_WAITERS_VAR`]`=N` makes a generation hold its key until N requests
    /// have waited, so the test suite's concurrent requests always overlap one generation.
    test_waiters: Option<u64>,
}

/// Environment variable for [`ThumbGate::test_pause`] (the test suite only; unset in use).
pub const TEST_WAITERS_VAR: &str = "VAULTBASE_TEST_THUMB_WAITERS";
/// How long a test pause holds a generation at most, so a broken single-flight fails its
/// test instead of hanging it.
const TEST_PAUSE_BOUND: Duration = Duration::from_secs(10);
const TEST_PAUSE_POLL: Duration = Duration::from_millis(5);

impl ThumbGate {
    pub fn sized_to_cpus() -> ThumbGate {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        ThumbGate::with_generations(cpus)
    }

    /// A gate that lets `n` generations run at once.
    pub fn with_generations(n: usize) -> ThumbGate {
        let test_waiters = std::env::var(TEST_WAITERS_VAR).ok().and_then(|v| v.parse().ok());
        ThumbGate {
            locks: KeyLocks::default(),
            permits: tokio::sync::Semaphore::new(n.max(1)),
            waited: AtomicU64::new(0),
            test_waiters,
        }
    }

    /// Counts a request that waits for another's generation of the same thumbnail.
    pub fn note_wait(&self) {
        self.waited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Called by a generation while it holds its key: returns at once unless the test
    /// variable is set, then once that many requests have waited (or after the bound).
    pub async fn test_pause(&self) {
        let Some(target) = self.test_waiters else { return };
        let deadline = tokio::time::Instant::now() + TEST_PAUSE_BOUND;
        while self.waited() < target && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TEST_PAUSE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_syntax() {
        assert_eq!(parse("100x50"), Some(Spec { width: 100, height: 50, mode: Mode::Center }));
        assert_eq!(parse("100x50t").map(|s| s.mode), Some(Mode::Top));
        assert_eq!(parse("100x50b").map(|s| s.mode), Some(Mode::Bottom));
        assert_eq!(parse("100x50f").map(|s| s.mode), Some(Mode::Fit));
        assert_eq!(parse("0x50").map(|s| s.mode), Some(Mode::Aspect));
        assert_eq!(parse("50x0").map(|s| s.mode), Some(Mode::Aspect));
        for bad in ["0x0", "x50", "50x", "abc", "", "10x10z", "-1x5", "99999999x1", "0x50t", "1x2x3"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(allowed(&[], "100x100"));
        assert!(allowed(&["20x30".into()], "20x30"));
        assert!(!allowed(&["20x30".into()], "20x31"));
    }

    #[test]
    fn every_mode_gives_the_asked_box() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(300, 120, image::Rgba([10, 20, 30, 255])));
        let dims = |s: &str| {
            let t = resize(&img, parse(s).expect("spec"));
            (t.width(), t.height())
        };
        assert_eq!(dims("50x50"), (50, 50));
        assert_eq!(dims("50x50t"), (50, 50));
        assert_eq!(dims("50x50b"), (50, 50));
        assert_eq!(dims("80x200t"), (80, 200));
        assert_eq!(dims("100x100f"), (100, 40));
        assert_eq!(dims("0x60"), (150, 60));
        assert_eq!(dims("150x0"), (150, 60));
    }

    #[test]
    fn generations_are_bounded_by_the_cpu_count() {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let gate = ThumbGate::sized_to_cpus();
        assert_eq!(gate.permits.available_permits(), cpus);
        let held: Vec<_> = (0..cpus).map(|_| gate.permits.try_acquire().expect("a permit per CPU")).collect();
        assert!(gate.permits.try_acquire().is_err(), "one more generation than CPUs must wait");
        drop(held);
        assert!(gate.permits.try_acquire().is_ok());
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_its_pixels_are_allocated() {
        // 16,000 × 16,000 RGBA (1 GB of pixels) declared by a header of a few dozen bytes.
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &[&16_000u32.to_be_bytes()[..], &16_000u32.to_be_bytes()[..], &[8, 6, 0, 0, 0]].concat());
        chunk(&mut png, b"IDAT", &[0x78, 0x01]);
        chunk(&mut png, b"IEND", &[]);
        let err = generate(&png, ImageFormat::Png, parse("100x100").expect("spec")).expect_err("refused");
        assert!(matches!(&err, ThumbError::Image(image::ImageError::Limits(_))), "{err}");
        // And the resize's own buffer is bounded: a wide source asked for a tall thumbnail.
        assert!(resize_bytes(16_000, 100, parse("10000x10000").expect("spec")) > MAX_DECODE_ALLOC_BYTES);
        assert!(resize_bytes(8_000, 6_000, parse("100x100").expect("spec")) < MAX_DECODE_ALLOC_BYTES);
    }

    #[test]
    fn png_round_trip() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(64, 32, image::Rgba([200, 0, 0, 255])));
        let mut src = Cursor::new(Vec::new());
        img.write_to(&mut src, ImageFormat::Png).expect("encode");
        for fmt in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP] {
            let mut src = Cursor::new(Vec::new());
            img.write_to(&mut src, fmt).expect("encode source");
            let out = generate(src.get_ref(), fmt, parse("16x16").expect("spec")).expect("thumb");
            let back = image::load_from_memory_with_format(&out, fmt).expect("decode thumb");
            assert_eq!((back.width(), back.height()), (16, 16), "{fmt:?}");
        }
        assert!(generate(b"not an image", ImageFormat::Png, parse("16x16").expect("spec")).is_err());
    }
}
