//! Disk faults on demand: loaded into a process with `LD_PRELOAD`, this library makes
//! the kernel's answer to a write or a sync of chosen files an error, as a failing
//! disk, a full one or a quota would give it, so that the tests in
//! `tests/e2e/io_faults.rs` can check what Spark keeps when its store's I/O fails.
//!
//! It interposes the calls sled 0.34 writes its files with (seen with strace, and in
//! its source): `pwrite64` and `sync_file_range` for the log, `write` for blobs,
//! snapshots and `conf`, `fsync` for the flusher and snapshots; and, so that a change
//! in how the bytes go out cannot slip past it, `pwrite`, `writev`, `pwritev`,
//! `pwritev64` and `fdatasync`. Each calls the real function, found with
//! `dlsym(RTLD_NEXT, ..)`, unless it is to fail.
//!
//! What fails is set by environment variables, read once, as the library is loaded:
//!
//! - `SPARK_FAULT_PATH`: a piece of the path of the files to fail (the absolute path
//!   `/proc/self/fd` gives). Unset, nothing fails; empty, any file may.
//! - `SPARK_FAULT_OPS`: `write`, `sync` or `write,sync` (the default): which calls on
//!   those files count and fail.
//! - `SPARK_FAULT_AFTER_CALLS`: that many matching calls succeed; the later ones fail.
//! - `SPARK_FAULT_AFTER_BYTES`: that many bytes of matching writes are written; the
//!   write that crosses the mark is cut short at it (it returns fewer bytes than asked,
//!   as a filling disk does) and the calls after it fail. With both marks, failing
//!   starts at the first reached; with neither, at the first matching call.
//! - `SPARK_FAULT_ERRNO`: `EIO` (the default), `ENOSPC` or `EDQUOT`.
//! - `SPARK_FAULT_TIMES`: how many calls fail, after which calls succeed again (a
//!   transient fault); unset, every matching call after the mark fails (a dead disk).
//!
//! The first failure is announced on stderr (`spark-faultfs: ..`), so that a test can
//! tell a fault that struck from a mark the run never reached. A setting that does not
//! parse aborts the process: a test must not pass for a fault that was never armed.
//!
//! What runs inside an interposed call is kept to what is safe there: atomics, a
//! `readlink` of `/proc/self/fd/N` into a buffer on the stack (each time, never cached,
//! so that a descriptor closed and reused for another file is never mistaken for the
//! old one; a syscall is cheap next to the write it precedes), and the real functions.
//! Nothing allocates after loading, and no lock is taken.

#![cfg(target_os = "linux")]

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libc::{iovec, off_t, off64_t, size_t, ssize_t};

/// What to fail, as the environment says.
struct Plan {
    path: Vec<u8>,
    writes: bool,
    syncs: bool,
    /// Matching calls that succeed before failing starts (`u64::MAX`: no such mark).
    after_calls: u64,
    /// Bytes of matching writes written before failing starts (`u64::MAX`: no mark).
    after_bytes: u64,
    /// How many calls fail (`u64::MAX`: all of them).
    times: u64,
    errno: c_int,
    errno_name: &'static str,
}

static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
/// Matching calls so far, failed ones included.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Bytes matching writes were asked to write so far.
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Calls failed so far.
static FAILED: AtomicU64 = AtomicU64::new(0);
static ANNOUNCED: AtomicBool = AtomicBool::new(false);

// Read the plan and find the real functions while the process has one thread and
// nothing is being written, rather than in the first interposed call.
#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

extern "C" fn on_load() {
    let _ = plan();
    let _ = (
        real::write(),
        real::pwrite(),
        real::pwrite64(),
        real::writev(),
    );
    let _ = (
        real::pwritev(),
        real::pwritev64(),
        real::fsync(),
        real::fdatasync(),
    );
    let _ = real::sync_file_range();
}

fn plan() -> Option<&'static Plan> {
    PLAN.get_or_init(|| match read_plan() {
        Ok(plan) => plan,
        Err(why) => {
            say(&[b"spark-faultfs: ", why.as_bytes(), b"\n"]);
            std::process::abort();
        }
    })
    .as_ref()
}

fn read_plan() -> Result<Option<Plan>, String> {
    use std::os::unix::ffi::OsStringExt;
    let Some(path) = std::env::var_os("SPARK_FAULT_PATH") else {
        return Ok(None);
    };
    let var = |name: &str| std::env::var(name).ok();
    let number = |name: &str| -> Result<Option<u64>, String> {
        var(name)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| format!("{name} is `{text}`, not a number"))
            })
            .transpose()
    };
    let ops = var("SPARK_FAULT_OPS").unwrap_or_else(|| "write,sync".to_owned());
    let (mut writes, mut syncs) = (false, false);
    for op in ops.split(',') {
        match op.trim() {
            "write" => writes = true,
            "sync" => syncs = true,
            other => return Err(format!("SPARK_FAULT_OPS names `{other}`: use write, sync")),
        }
    }
    let (errno, errno_name) = match var("SPARK_FAULT_ERRNO").as_deref().unwrap_or("EIO") {
        "EIO" => (libc::EIO, "EIO"),
        "ENOSPC" => (libc::ENOSPC, "ENOSPC"),
        "EDQUOT" => (libc::EDQUOT, "EDQUOT"),
        other => {
            return Err(format!(
                "SPARK_FAULT_ERRNO is `{other}`: use EIO, ENOSPC, EDQUOT"
            ));
        }
    };
    let after_calls = number("SPARK_FAULT_AFTER_CALLS")?;
    let after_bytes = number("SPARK_FAULT_AFTER_BYTES")?;
    let after_calls = match (after_calls, after_bytes) {
        (None, None) => 0,
        (calls, _) => calls.unwrap_or(u64::MAX),
    };
    Ok(Some(Plan {
        path: path.into_vec(),
        writes,
        syncs,
        after_calls,
        after_bytes: after_bytes.unwrap_or(u64::MAX),
        times: number("SPARK_FAULT_TIMES")?.unwrap_or(u64::MAX),
        errno,
        errno_name,
    }))
}

#[derive(Clone, Copy)]
enum Kind {
    Write,
    Sync,
}

/// What an interposed call does.
enum Verdict {
    /// Calls the real function as asked.
    Pass,
    /// Writes only this many bytes (a torn write).
    Short(usize),
    /// Fails with this errno.
    Fail(c_int),
}

/// What the call `name` of `kind` on `fd`, of `len` bytes, does. A write that crosses
/// the byte mark is cut short there if it can be (`tear`), else it fails whole.
fn verdict(name: &str, kind: Kind, fd: c_int, len: usize, tear: bool) -> Verdict {
    let Some(plan) = plan() else {
        return Verdict::Pass;
    };
    let (counted, len) = match kind {
        Kind::Write => (plan.writes, len as u64),
        Kind::Sync => (plan.syncs, 0),
    };
    if !counted {
        return Verdict::Pass;
    }
    let mut buffer = [0u8; 1024];
    let Some(path) = fd_path(fd, &mut buffer) else {
        return Verdict::Pass;
    };
    let matches = plan.path.is_empty() || path.windows(plan.path.len()).any(|p| p == plan.path);
    if !matches {
        return Verdict::Pass;
    }
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let before = BYTES.fetch_add(len, Ordering::SeqCst);
    if calls <= plan.after_calls && before < plan.after_bytes {
        let crosses = before.saturating_add(len) > plan.after_bytes;
        if !crosses {
            return Verdict::Pass;
        }
        if tear {
            return Verdict::Short((plan.after_bytes - before) as usize);
        }
    }
    if FAILED.fetch_add(1, Ordering::SeqCst) >= plan.times {
        return Verdict::Pass;
    }
    if !ANNOUNCED.swap(true, Ordering::SeqCst) {
        say(&[
            b"spark-faultfs: ",
            name.as_bytes(),
            b" on ",
            path,
            b" fails with ",
            plan.errno_name.as_bytes(),
            b" (injected)\n",
        ]);
    }
    Verdict::Fail(plan.errno)
}

/// The path of the file open as `fd`, read into `buffer`, if it has one.
fn fd_path(fd: c_int, buffer: &mut [u8]) -> Option<&[u8]> {
    // "/proc/self/fd/" and the descriptor's digits, NUL-terminated.
    let mut link = [0u8; 32];
    let prefix = b"/proc/self/fd/";
    link[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut rest = u32::try_from(fd).ok()?;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for (at, digit) in digits[..count].iter().rev().enumerate() {
        link[prefix.len() + at] = *digit;
    }
    // SAFETY: `link` is NUL-terminated (zeroed past the digits) and `buffer` is
    // writable for its length; readlink writes at most that many bytes.
    let read = unsafe {
        libc::readlink(
            link.as_ptr().cast(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    let read = usize::try_from(read).ok()?;
    Some(&buffer[..read])
}

/// Writes `parts` to stderr with the real `write`, never the interposed one.
fn say(parts: &[&[u8]]) {
    let mut line = [0u8; 1024];
    let mut len = 0;
    for part in parts {
        let take = part.len().min(line.len() - len);
        line[len..len + take].copy_from_slice(&part[..take]);
        len += take;
    }
    if let Some(write) = real::write() {
        // SAFETY: `line` holds `len` initialised bytes.
        let _ = unsafe { write(2, line.as_ptr().cast(), len) };
    }
}

/// Fails the call with `errno`, as libc does: -1 and `errno` set.
fn fail<T: From<i8>>(errno: c_int) -> T {
    // SAFETY: `__errno_location` returns this thread's errno, always valid to write.
    unsafe { *libc::__errno_location() = errno };
    T::from(-1)
}

/// The bytes `count` buffers of `iov` hold.
///
/// # Safety
///
/// `iov` points to `count` valid `iovec`s (or `count` is not positive).
unsafe fn vector_len(iov: *const iovec, count: c_int) -> usize {
    let Ok(count) = usize::try_from(count) else {
        return 0;
    };
    if iov.is_null() {
        return 0;
    }
    // SAFETY: the caller passes `count` valid iovecs at `iov`.
    let buffers = unsafe { std::slice::from_raw_parts(iov, count) };
    buffers.iter().map(|buffer| buffer.iov_len).sum()
}

/// The real functions, found once with `dlsym(RTLD_NEXT, ..)`.
mod real {
    use std::ffi::{c_int, c_uint, c_void};
    use std::sync::atomic::{AtomicPtr, Ordering};

    use libc::{iovec, off_t, off64_t, size_t, ssize_t};

    /// The next definition of `name` after this library's, as a function of type `F`.
    fn next<F: Copy>(slot: &AtomicPtr<c_void>, name: &std::ffi::CStr) -> Option<F> {
        let mut found = slot.load(Ordering::Acquire);
        if found.is_null() {
            // SAFETY: `name` is NUL-terminated; RTLD_NEXT searches the libraries
            // loaded after this one, so this finds libc's function, not ours. Two
            // threads racing here find and store the same pointer.
            found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
            slot.store(found, Ordering::Release);
        }
        if found.is_null() {
            return None;
        }
        assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
        // SAFETY: `found` is libc's `name`, whose C type `F` spells (each caller below
        // names the type of its symbol), and a function pointer has a pointer's size.
        Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&found) })
    }

    macro_rules! real {
        ($($fn:ident: $ty:ty;)*) => {$(
            pub(crate) fn $fn() -> Option<$ty> {
                static SLOT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
                let name = concat!(stringify!($fn), "\0");
                let name = std::ffi::CStr::from_bytes_with_nul(name.as_bytes())
                    .expect("the name has one NUL, at its end");
                next(&SLOT, name)
            }
        )*};
    }

    real! {
        write: unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
        pwrite: unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
        pwrite64: unsafe extern "C" fn(c_int, *const c_void, size_t, off64_t) -> ssize_t;
        writev: unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
        pwritev: unsafe extern "C" fn(c_int, *const iovec, c_int, off_t) -> ssize_t;
        pwritev64: unsafe extern "C" fn(c_int, *const iovec, c_int, off64_t) -> ssize_t;
        fsync: unsafe extern "C" fn(c_int) -> c_int;
        fdatasync: unsafe extern "C" fn(c_int) -> c_int;
        sync_file_range: unsafe extern "C" fn(c_int, off64_t, off64_t, c_uint) -> c_int;
    }
}

/// The real function, or a failure with ENOSYS should there be none.
macro_rules! or_enosys {
    ($found:expr) => {
        match $found {
            Some(function) => function,
            None => return fail(libc::ENOSYS),
        }
    };
}

/// `write(2)`, failed as the plan says.
///
/// # Safety
///
/// As for `write(2)`: `buf` points to `count` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    let real = or_enosys!(real::write());
    match verdict("write", Kind::Write, fd, count, true) {
        // SAFETY: the caller's arguments, as `write(2)` takes them.
        Verdict::Pass => unsafe { real(fd, buf, count) },
        // SAFETY: as above, with fewer bytes.
        Verdict::Short(count) => unsafe { real(fd, buf, count) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `pwrite(2)`, failed as the plan says.
///
/// # Safety
///
/// As for `pwrite(2)`: `buf` points to `count` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    let real = or_enosys!(real::pwrite());
    match verdict("pwrite", Kind::Write, fd, count, true) {
        // SAFETY: the caller's arguments, as `pwrite(2)` takes them.
        Verdict::Pass => unsafe { real(fd, buf, count, offset) },
        // SAFETY: as above, with fewer bytes.
        Verdict::Short(count) => unsafe { real(fd, buf, count, offset) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `pwrite64`, failed as the plan says (what Rust's `write_at` calls on Linux).
///
/// # Safety
///
/// As for `pwrite(2)`: `buf` points to `count` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off64_t,
) -> ssize_t {
    let real = or_enosys!(real::pwrite64());
    match verdict("pwrite64", Kind::Write, fd, count, true) {
        // SAFETY: the caller's arguments, as `pwrite64` takes them.
        Verdict::Pass => unsafe { real(fd, buf, count, offset) },
        // SAFETY: as above, with fewer bytes.
        Verdict::Short(count) => unsafe { real(fd, buf, count, offset) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `writev(2)`, failed as the plan says (one that crosses the byte mark fails whole).
///
/// # Safety
///
/// As for `writev(2)`: `iov` points to `iovcnt` valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    let real = or_enosys!(real::writev());
    // SAFETY: the caller's buffers, as `writev(2)` takes them.
    let len = unsafe { vector_len(iov, iovcnt) };
    match verdict("writev", Kind::Write, fd, len, false) {
        // SAFETY: the caller's arguments, as `writev(2)` takes them.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd, iov, iovcnt) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `pwritev(2)`, failed as the plan says (one that crosses the byte mark fails whole).
///
/// # Safety
///
/// As for `pwritev(2)`: `iov` points to `iovcnt` valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwritev(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    offset: off_t,
) -> ssize_t {
    let real = or_enosys!(real::pwritev());
    // SAFETY: the caller's buffers, as `pwritev(2)` takes them.
    let len = unsafe { vector_len(iov, iovcnt) };
    match verdict("pwritev", Kind::Write, fd, len, false) {
        // SAFETY: the caller's arguments, as `pwritev(2)` takes them.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd, iov, iovcnt, offset) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `pwritev64`, failed as the plan says (one that crosses the byte mark fails whole).
///
/// # Safety
///
/// As for `pwritev(2)`: `iov` points to `iovcnt` valid buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwritev64(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    offset: off64_t,
) -> ssize_t {
    let real = or_enosys!(real::pwritev64());
    // SAFETY: the caller's buffers, as `pwritev(2)` takes them.
    let len = unsafe { vector_len(iov, iovcnt) };
    match verdict("pwritev64", Kind::Write, fd, len, false) {
        // SAFETY: the caller's arguments, as `pwritev64` takes them.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd, iov, iovcnt, offset) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `fsync(2)`, failed as the plan says.
///
/// # Safety
///
/// None beyond `fsync(2)`'s: it takes no pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    let real = or_enosys!(real::fsync());
    match verdict("fsync", Kind::Sync, fd, 0, false) {
        // SAFETY: `fsync(2)` takes a descriptor and nothing else.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `fdatasync(2)`, failed as the plan says.
///
/// # Safety
///
/// None beyond `fdatasync(2)`'s: it takes no pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    let real = or_enosys!(real::fdatasync());
    match verdict("fdatasync", Kind::Sync, fd, 0, false) {
        // SAFETY: `fdatasync(2)` takes a descriptor and nothing else.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd) },
        Verdict::Fail(errno) => fail(errno),
    }
}

/// `sync_file_range(2)`, failed as the plan says (sled calls it after each log write).
///
/// # Safety
///
/// None beyond `sync_file_range(2)`'s: it takes no pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sync_file_range(
    fd: c_int,
    offset: off64_t,
    nbytes: off64_t,
    flags: c_uint,
) -> c_int {
    let real = or_enosys!(real::sync_file_range());
    match verdict("sync_file_range", Kind::Sync, fd, 0, false) {
        // SAFETY: `sync_file_range(2)` takes a descriptor and numbers.
        Verdict::Pass | Verdict::Short(_) => unsafe { real(fd, offset, nbytes, flags) },
        Verdict::Fail(errno) => fail(errno),
    }
}
