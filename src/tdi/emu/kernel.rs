//! The emulated kernel routines (see the module above). Each checks the IRQL rule Microsoft's
//! reference states for it; a violation panics (`tdi-emu: IRQL violation …`).
use crate::kernel::*;
use crate::tdi::bindings::{
    find_ea, TCP_DEVICE_NAME, TDI_CONNECTION_CONTEXT, TDI_TRANSPORT_ADDRESS,
};
use core::ffi::c_void;
use std::alloc::Layout;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::tcp;

// ------------------------------------------------------------------------------------------------
// IRQL and violations

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
    /// This thread was created by `PsCreateSystemThread`.
    static SYSTEM_THREAD: Cell<bool> = const { Cell::new(false) };
    /// This system thread called `PsTerminateSystemThread` (which does not return in the
    /// kernel: no kernel routine may be called after it).
    static TERMINATED: Cell<bool> = const { Cell::new(false) };
    static THREAD_ID: usize = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
}
static NEXT_THREAD_ID: AtomicUsize = AtomicUsize::new(1);
static VIOLATION: Mutex<Option<String>> = Mutex::new(None);

pub(crate) fn first_violation() -> Option<String> {
    lock(&VIOLATION).clone()
}

/// Reports a kernel-rule violation: records it and panics with a clear message.
pub fn violation(msg: &str) -> ! {
    let text = format!("tdi-emu: {msg} (Driver Verifier stand-in)");
    {
        let mut v = lock(&VIOLATION);
        if v.is_none() {
            *v = Some(text.clone());
        }
    }
    eprintln!("{text}");
    panic!("{text}");
}

/// Reports a violation where a panic would not stop the test (a plain Rust frame whose panic
/// would be swallowed): records it, prints it and aborts the process.
fn fatal_violation(msg: &str) -> ! {
    let text = format!("tdi-emu: {msg} (Driver Verifier stand-in)");
    {
        let mut v = lock(&VIOLATION);
        if v.is_none() {
            *v = Some(text.clone());
        }
    }
    eprintln!("{text}");
    std::process::abort();
}

/// The current thread's IRQL.
pub fn irql() -> KIRQL {
    IRQL.with(|c| c.get())
}

fn set_irql(v: KIRQL) {
    IRQL.with(|c| c.set(v));
}

fn thread_id() -> usize {
    THREAD_ID.with(|t| *t)
}

/// Checks that the caller runs at IRQL <= `max` (and, on a system thread, that it has not
/// terminated itself).
pub fn require(max: KIRQL, what: &str) {
    if TERMINATED.with(|t| t.get()) {
        violation(&format!(
            "{what} called after PsTerminateSystemThread (which does not return: the thread \
             is gone)"
        ));
    }
    let now = irql();
    if now > max {
        violation(&format!(
            "IRQL violation: {what} called at IRQL {now}, allowed at most {max}"
        ));
    }
}

/// Runs `f` at DISPATCH_LEVEL, as the transport's DPCs and indications do, and checks that `f`
/// returns at DISPATCH_LEVEL (a client callback must not leave the IRQL changed).
pub fn at_dispatch<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let old = irql();
    if old > DISPATCH_LEVEL {
        violation(&format!("{what}: entered above DISPATCH_LEVEL"));
    }
    set_irql(DISPATCH_LEVEL);
    let r = f();
    let now = irql();
    if now != DISPATCH_LEVEL {
        violation(&format!(
            "{what} returned at IRQL {now}; client callbacks must return at DISPATCH_LEVEL"
        ));
    }
    set_irql(old);
    r
}

/// Locks a std mutex, ignoring poisoning (a panicking test thread must not wedge the rest).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[no_mangle]
pub extern "system" fn KeGetCurrentIrql() -> KIRQL {
    irql()
}

// ------------------------------------------------------------------------------------------------
// Spin locks

#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL {
    require(DISPATCH_LEVEL, "KeAcquireSpinLockRaiseToDpc");
    let old = irql();
    set_irql(DISPATCH_LEVEL);
    // SAFETY: a KSPIN_LOCK is a pointer-sized word that all users access atomically here.
    let word = unsafe { &*(lock as *const AtomicUsize) };
    let me = thread_id();
    let mut spins = 0u32;
    loop {
        match word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return old,
            Err(owner) if owner == me => {
                violation("spin lock acquired recursively by its owner (deadlock)")
            }
            Err(_) => {
                spins += 1;
                if spins % 64 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, new_irql: KIRQL) {
    // SAFETY: as above.
    let word = unsafe { &*(lock as *const AtomicUsize) };
    if word.load(Ordering::Relaxed) != thread_id() {
        violation("KeReleaseSpinLock on a spin lock the thread does not hold");
    }
    if irql() != DISPATCH_LEVEL {
        violation("KeReleaseSpinLock while not at DISPATCH_LEVEL");
    }
    if new_irql > DISPATCH_LEVEL {
        violation("KeReleaseSpinLock to an IRQL above DISPATCH_LEVEL");
    }
    word.store(0, Ordering::Release);
    set_irql(new_irql);
}

// ------------------------------------------------------------------------------------------------
// Dispatcher objects: events and threads

/// `DISPATCHER_HEADER.Type` values used here.
const EVENT_NOTIFICATION_OBJECT: u8 = 0;
const EVENT_SYNCHRONIZATION_OBJECT: u8 = 1;
const THREAD_OBJECT: u8 = 6;

static DISPATCHER: LazyLock<(Mutex<()>, Condvar)> =
    LazyLock::new(|| (Mutex::new(()), Condvar::new()));

fn header_type(obj: *mut c_void) -> &'static AtomicU8 {
    // SAFETY: callers pass a live dispatcher object; byte 0 of its header is the type.
    unsafe { &*(obj as *const AtomicU8) }
}

fn signal_state(obj: *mut c_void) -> &'static AtomicI32 {
    // SAFETY: SignalState is the aligned i32 at offset 4 of the header of a live object.
    unsafe { &*((obj as *mut u8).add(4) as *const AtomicI32) }
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeEvent(
    event: *mut KEVENT,
    ty: EVENT_TYPE,
    state: BOOLEAN,
) {
    require(DISPATCH_LEVEL, "KeInitializeEvent");
    let t = if ty == SYNCHRONIZATION_EVENT {
        EVENT_SYNCHRONIZATION_OBJECT
    } else {
        EVENT_NOTIFICATION_OBJECT
    };
    // SAFETY: the caller passes writable KEVENT storage.
    unsafe {
        event.write(KEVENT {
            Header: DISPATCHER_HEADER {
                Lock: i32::from(t),
                SignalState: i32::from(state != 0),
                WaitListHead: LIST_ENTRY {
                    Flink: core::ptr::null_mut(),
                    Blink: core::ptr::null_mut(),
                },
            },
        });
    }
}

fn signal(obj: *mut c_void) -> i32 {
    let _g = lock(&DISPATCHER.0);
    let prev = signal_state(obj).swap(1, Ordering::SeqCst);
    DISPATCHER.1.notify_all();
    prev
}

#[no_mangle]
pub unsafe extern "system" fn KeSetEvent(
    event: *mut KEVENT,
    _incr: KPRIORITY,
    wait: BOOLEAN,
) -> i32 {
    require(DISPATCH_LEVEL, "KeSetEvent");
    if wait != 0 {
        require(APC_LEVEL, "KeSetEvent(Wait = TRUE)");
    }
    signal(event.cast())
}

#[no_mangle]
pub unsafe extern "system" fn KeClearEvent(event: *mut KEVENT) {
    require(DISPATCH_LEVEL, "KeClearEvent");
    signal_state(event.cast()).store(0, Ordering::SeqCst);
}

/// Relative timeout from a `LARGE_INTEGER` (None: infinite).
fn timeout_of(t: *mut LARGE_INTEGER, what: &str) -> Option<Duration> {
    if t.is_null() {
        return None;
    }
    // SAFETY: a non-null timeout points to a LARGE_INTEGER.
    let v = unsafe { (*t).QuadPart };
    if v > 0 {
        violation(&format!("{what}: absolute timeouts are not modelled"));
    }
    Some(Duration::from_nanos(v.unsigned_abs().saturating_mul(100)))
}

#[no_mangle]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: *mut c_void,
    _reason: KWAIT_REASON,
    _mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    let t = timeout_of(timeout, "KeWaitForSingleObject");
    if t != Some(Duration::ZERO) {
        require(
            APC_LEVEL,
            "KeWaitForSingleObject with a non-zero (or infinite) timeout",
        );
    } else {
        require(DISPATCH_LEVEL, "KeWaitForSingleObject");
    }
    let ty = header_type(object).load(Ordering::Relaxed);
    let deadline = t.map(|d| Instant::now() + d);
    let mut g = lock(&DISPATCHER.0);
    loop {
        let s = signal_state(object);
        if s.load(Ordering::SeqCst) != 0 {
            if ty == EVENT_SYNCHRONIZATION_OBJECT {
                s.store(0, Ordering::SeqCst);
            }
            return STATUS_SUCCESS;
        }
        match deadline {
            None => g = DISPATCHER.1.wait(g).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return STATUS_TIMEOUT;
                }
                g = DISPATCHER
                    .1
                    .wait_timeout(g, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn KeDelayExecutionThread(
    _mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    interval: *mut LARGE_INTEGER,
) -> NTSTATUS {
    require(APC_LEVEL, "KeDelayExecutionThread");
    if let Some(d) = timeout_of(interval, "KeDelayExecutionThread") {
        std::thread::sleep(d);
    }
    STATUS_SUCCESS
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

#[no_mangle]
pub unsafe extern "system" fn KeQueryPerformanceCounter(freq: *mut LARGE_INTEGER) -> LARGE_INTEGER {
    if !freq.is_null() {
        // SAFETY: a non-null pointer is writable per the contract.
        unsafe { (*freq).QuadPart = 10_000_000 };
    }
    let ticks = EPOCH.elapsed().as_nanos() / 100;
    LARGE_INTEGER {
        QuadPart: i64::try_from(ticks).unwrap_or(i64::MAX),
    }
}

#[no_mangle]
pub extern "system" fn KeQueryActiveProcessorCountEx(_group: u16) -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

thread_local! {
    /// The system affinity `KeSetSystemAffinityThreadEx` gave this thread (0: none).
    static SYSTEM_AFFINITY: Cell<KAFFINITY> = const { Cell::new(0) };
}

/// Applies `mask` (processors of group 0) to the calling OS thread.
fn pin_to(mask: KAFFINITY) {
    // SAFETY: `cpu_set_t` is plain data, zero is a valid (empty) set; CPU_SET writes inside it
    // for indices < 64 <= CPU_SETSIZE; sched_setaffinity(0, …) applies to the calling thread and
    // only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..usize::BITS as usize {
            if mask & (1 << cpu) != 0 {
                libc::CPU_SET(cpu, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Sets the calling thread's system affinity. As on Windows, a mask naming no active processor
/// is invalid and has no effect; the previous system affinity (0: none) is returned.
#[no_mangle]
pub extern "system" fn KeSetSystemAffinityThreadEx(affinity: KAFFINITY) -> KAFFINITY {
    require(DISPATCH_LEVEL, "KeSetSystemAffinityThreadEx");
    let active = KeQueryActiveProcessorCountEx(0).min(usize::BITS);
    let valid: KAFFINITY = if active >= usize::BITS {
        KAFFINITY::MAX
    } else {
        (1 << active) - 1
    };
    let prev = SYSTEM_AFFINITY.with(|a| a.get());
    if affinity & valid == 0 || affinity & !valid != 0 {
        return prev;
    }
    SYSTEM_AFFINITY.with(|a| a.set(affinity));
    lock(&AFFINITIES_SET).push(affinity);
    pin_to(affinity);
    prev
}

/// Every system affinity applied so far, in order (see `emu::system_affinities`).
pub(crate) static AFFINITIES_SET: Mutex<Vec<KAFFINITY>> = Mutex::new(Vec::new());

/// Restores the affinity `KeSetSystemAffinityThreadEx` returned (0: the thread's own, all
/// processors here).
#[no_mangle]
pub extern "system" fn KeRevertToUserAffinityThreadEx(affinity: KAFFINITY) {
    require(DISPATCH_LEVEL, "KeRevertToUserAffinityThreadEx");
    SYSTEM_AFFINITY.with(|a| a.set(affinity));
    pin_to(if affinity == 0 {
        KAFFINITY::MAX
    } else {
        affinity
    });
}

// ------------------------------------------------------------------------------------------------
// Object manager: handles, references, files, threads

/// An emulated kernel object.
pub enum Object {
    File(*mut FILE_OBJECT),
    Thread(*mut KEVENT),
}
// SAFETY: the pointers are owned by the object table and only used under its rules.
unsafe impl Send for Object {}

struct ObjEntry {
    refs: usize,
    handle_closed: bool,
    obj: Object,
}

#[derive(Default)]
struct ObTable {
    next_handle: usize,
    handles: HashMap<usize, usize>,
    objects: HashMap<usize, ObjEntry>,
}

static OB: LazyLock<Mutex<ObTable>> = LazyLock::new(|| Mutex::new(ObTable::default()));

fn new_handle(obj: Object, extra_refs: usize) -> HANDLE {
    let key = match &obj {
        Object::File(f) => *f as usize,
        Object::Thread(t) => *t as usize,
    };
    let mut t = lock(&OB);
    t.next_handle += 4;
    // Kernel handles have the top bit set on x64.
    let h = 0xFFFF_FFFF_8000_0000usize + t.next_handle;
    t.handles.insert(h, key);
    t.objects.insert(
        key,
        ObjEntry {
            refs: 1 + extra_refs,
            handle_closed: false,
            obj,
        },
    );
    h as HANDLE
}

/// The file object behind a handle (no reference taken).
pub fn handle_file(h: HANDLE) -> Option<*mut FILE_OBJECT> {
    let t = lock(&OB);
    let key = t.handles.get(&(h as usize))?;
    match t.objects.get(key).map(|e| &e.obj) {
        Some(Object::File(f)) => Some(*f),
        _ => None,
    }
}

fn deref(key: usize) {
    let freed = {
        let mut t = lock(&OB);
        let Some(e) = t.objects.get_mut(&key) else {
            violation("ObDereferenceObject on an object with no reference");
        };
        e.refs -= 1;
        if e.refs == 0 {
            t.objects.remove(&key)
        } else {
            None
        }
    };
    if let Some(e) = freed {
        if let Object::File(f) = e.obj {
            let pending = lock(&IRPS).iter().any(|(&irp, o)| {
                matches!(o, IrpOwner::Transport)
                    // SAFETY: a live IRP the transport owns; its current location is valid.
                    && unsafe {
                        (*(*(irp as *mut IRP)).Tail.Overlay.Stack.CurrentStackLocation).FileObject
                    } == f
            });
            if pending {
                violation(
                    "the last reference to a file object dropped while an IRP sent for it is \
                     still outstanding at the transport (keep the reference until it completes)",
                );
            }
        }
        match e.obj {
            // SAFETY: the last reference is gone: the object memory is ours to free.
            Object::File(f) => unsafe { free_file(f) },
            // SAFETY: as above; thread objects are boxed KEVENTs.
            Object::Thread(t) => unsafe { drop(Box::from_raw(t)) },
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn ObReferenceObjectByHandle(
    handle: HANDLE,
    _access: ACCESS_MASK,
    _ty: *mut c_void,
    mode: KPROCESSOR_MODE,
    object: *mut *mut c_void,
    _info: *mut c_void,
) -> NTSTATUS {
    require(PASSIVE_LEVEL, "ObReferenceObjectByHandle");
    if mode != KERNEL_MODE {
        violation("ObReferenceObjectByHandle from a driver with UserMode on a kernel handle");
    }
    let mut t = lock(&OB);
    let Some(&key) = t.handles.get(&(handle as usize)) else {
        return STATUS_INVALID_HANDLE;
    };
    if let Some(e) = t.objects.get_mut(&key) {
        e.refs += 1;
    }
    // SAFETY: the out pointer is writable per the contract.
    unsafe { *object = key as *mut c_void };
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn ObfDereferenceObject(object: *mut c_void) -> isize {
    require(DISPATCH_LEVEL, "ObfDereferenceObject");
    deref(object as usize);
    0
}

#[no_mangle]
pub unsafe extern "system" fn ZwClose(handle: HANDLE) -> NTSTATUS {
    require(PASSIVE_LEVEL, "ZwClose");
    let key = {
        let mut t = lock(&OB);
        let Some(key) = t.handles.remove(&(handle as usize)) else {
            violation("ZwClose on an invalid or already closed handle");
        };
        if let Some(e) = t.objects.get_mut(&key) {
            e.handle_closed = true;
        }
        key
    };
    // Last handle: IRP_MJ_CLEANUP for files (the transport tears the endpoint down).
    let file = {
        let t = lock(&OB);
        match t.objects.get(&key).map(|e| &e.obj) {
            Some(Object::File(f)) => Some(*f),
            _ => None,
        }
    };
    if let Some(f) = file {
        // SAFETY: the file object is alive (we still hold the handle's reference).
        unsafe { tcp::cleanup(f) };
    }
    deref(key);
    STATUS_SUCCESS
}

/// The emulated `\Device\Tcp` device object.
pub struct Device(pub *mut DEVICE_OBJECT);
// SAFETY: created once, never freed, only read afterwards.
unsafe impl Send for Device {}
// SAFETY: as above.
unsafe impl Sync for Device {}

/// Stack locations the emulated transport needs (two, so clients must use `StackSize`).
pub const TCP_STACK_SIZE: i8 = 2;

pub static TCP_DEVICE: LazyLock<Device> = LazyLock::new(|| {
    // SAFETY: DEVICE_OBJECT is plain data; all-zero is a valid (empty) value.
    let mut d: Box<DEVICE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    d.Type = 3;
    d.Size = core::mem::size_of::<DEVICE_OBJECT>() as u16;
    d.DeviceType = FILE_DEVICE_NETWORK;
    d.StackSize = TCP_STACK_SIZE;
    Device(Box::into_raw(d))
});

/// What `FILE_OBJECT.FsContext` points to.
pub struct EmuFile {
    pub kind: tcp::Endpoint,
}

unsafe fn free_file(f: *mut FILE_OBJECT) {
    // SAFETY: f came from Box::into_raw in ZwCreateFile, FsContext from Box::into_raw too.
    unsafe {
        let ctx = (*f).FsContext as *mut EmuFile;
        if !ctx.is_null() {
            drop(Box::from_raw(ctx));
        }
        drop(Box::from_raw(f));
    }
}

/// The endpoint behind a file object the transport was given.
///
/// # Safety
/// `f` must be a live file object created by [`ZwCreateFile`].
pub unsafe fn file_endpoint<'a>(f: *mut FILE_OBJECT) -> &'a tcp::Endpoint {
    // SAFETY: per the contract FsContext is a live EmuFile.
    unsafe { &(*((*f).FsContext as *const EmuFile)).kind }
}

fn utf16_name(s: *const UNICODE_STRING) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: a non-null UNICODE_STRING with Length bytes at Buffer.
    unsafe {
        let len = usize::from((*s).Length) / 2;
        if (*s).Buffer.is_null() {
            return String::new();
        }
        String::from_utf16_lossy(core::slice::from_raw_parts((*s).Buffer, len))
    }
}

#[no_mangle]
pub unsafe extern "system" fn ZwCreateFile(
    file_handle: *mut HANDLE,
    _access: ACCESS_MASK,
    oa: *mut OBJECT_ATTRIBUTES,
    iosb: *mut IO_STATUS_BLOCK,
    _alloc: *mut LARGE_INTEGER,
    _attrs: u32,
    _share: u32,
    _disposition: u32,
    _options: u32,
    ea: *mut c_void,
    ea_len: u32,
) -> NTSTATUS {
    require(PASSIVE_LEVEL, "ZwCreateFile");
    // SAFETY: the caller passes valid object attributes.
    let (name, attrs) = unsafe { (utf16_name((*oa).ObjectName), (*oa).Attributes) };
    if attrs & OBJ_KERNEL_HANDLE == 0 {
        violation("ZwCreateFile without OBJ_KERNEL_HANDLE: a driver must open kernel handles");
    }
    let set_iosb = |st: NTSTATUS, info: usize| {
        if !iosb.is_null() {
            // SAFETY: a non-null IO_STATUS_BLOCK is writable.
            unsafe {
                (*iosb).u.Status = st;
                (*iosb).Information = info;
            }
        }
    };
    if !name.eq_ignore_ascii_case(TCP_DEVICE_NAME) {
        set_iosb(STATUS_OBJECT_NAME_NOT_FOUND, 0);
        return STATUS_OBJECT_NAME_NOT_FOUND;
    }
    let eas: &[u8] = if ea.is_null() || ea_len == 0 {
        &[]
    } else {
        // SAFETY: ea_len bytes at ea per the contract.
        unsafe { core::slice::from_raw_parts(ea.cast::<u8>(), ea_len as usize) }
    };
    let endpoint = if let Some(v) = find_ea(eas, TDI_TRANSPORT_ADDRESS) {
        match tcp::open_address(v) {
            Ok(e) => e,
            Err(st) => {
                set_iosb(st, 0);
                return st;
            }
        }
    } else if let Some(v) = find_ea(eas, TDI_CONNECTION_CONTEXT) {
        let Ok(bytes) = <[u8; 8]>::try_from(v) else {
            set_iosb(STATUS_INVALID_PARAMETER, 0);
            return STATUS_INVALID_PARAMETER;
        };
        tcp::open_connection(usize::from_le_bytes(bytes))
    } else {
        tcp::Endpoint::Control
    };
    // SAFETY: FILE_OBJECT is plain data; zero is a valid initial value.
    let mut f: Box<FILE_OBJECT> = Box::new(unsafe { core::mem::zeroed() });
    f.Type = 5;
    f.Size = core::mem::size_of::<FILE_OBJECT>() as i16;
    f.DeviceObject = TCP_DEVICE.0;
    f.FsContext2 = endpoint.fs_context2() as *mut c_void;
    f.FsContext = Box::into_raw(Box::new(EmuFile { kind: endpoint })).cast();
    let fp = Box::into_raw(f);
    // SAFETY: fp is live; its endpoint learns its file object for identification.
    unsafe { file_endpoint(fp).set_file(fp) };
    let h = new_handle(Object::File(fp), 0);
    // SAFETY: the out handle is writable.
    unsafe { *file_handle = h };
    set_iosb(STATUS_SUCCESS, 0);
    STATUS_SUCCESS
}

// ------------------------------------------------------------------------------------------------
// System threads

struct ThreadStart {
    routine: KSTART_ROUTINE,
    ctx: usize,
    obj: usize,
}

#[no_mangle]
pub unsafe extern "system" fn PsCreateSystemThread(
    handle: *mut HANDLE,
    _access: ACCESS_MASK,
    _oa: *mut OBJECT_ATTRIBUTES,
    _process: HANDLE,
    _cid: *mut CLIENT_ID,
    routine: KSTART_ROUTINE,
    ctx: *mut c_void,
) -> NTSTATUS {
    require(PASSIVE_LEVEL, "PsCreateSystemThread");
    // SAFETY: KEVENT is plain data; initialised right below.
    let ev: *mut KEVENT = Box::into_raw(Box::new(unsafe { core::mem::zeroed::<KEVENT>() }));
    // SAFETY: ev is fresh storage; type = thread object, not signalled.
    unsafe {
        (*ev).Header.Lock = i32::from(THREAD_OBJECT);
    }
    // One reference for the handle, one for the running thread.
    let h = new_handle(Object::Thread(ev), 1);
    let start = ThreadStart {
        routine,
        ctx: ctx as usize,
        obj: ev as usize,
    };
    let spawned = std::thread::Builder::new()
        .name("tdi-emu-system-thread".into())
        .spawn(move || {
            let s = start;
            set_irql(PASSIVE_LEVEL);
            SYSTEM_THREAD.with(|t| t.set(true));
            // SAFETY: the driver's start routine with its context, as PsCreateSystemThread does.
            unsafe { (s.routine)(s.ctx as *mut c_void) };
            if !TERMINATED.with(|t| t.replace(false)) {
                // Not a panic: this thread is not inside an `extern "system"` frame, so a panic
                // would only end it and leave its joiner waiting for good.
                fatal_violation(
                    "system thread ended by returning from its start routine: it must terminate \
                     itself with PsTerminateSystemThread (PsCreateSystemThread)",
                );
            }
            if irql() != PASSIVE_LEVEL {
                violation("system thread returned above PASSIVE_LEVEL");
            }
            signal(s.obj as *mut c_void);
            deref(s.obj);
        });
    if spawned.is_err() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: the out handle is writable.
    unsafe { *handle = h };
    STATUS_SUCCESS
}

/// `PsTerminateSystemThread`. A Rust thread cannot be ended from the inside soundly
/// (`pthread_exit` force-unwinds through frames with destructors, std's thread frame among
/// them), so the termination is recorded and the call returns; from then on any kernel routine
/// called on this thread is a violation (in the kernel the thread no longer exists), and the
/// trampoline in `PsCreateSystemThread` ends the thread when the start routine returns. The
/// driver calls it last, with nothing left to drop (`obj::terminate_system_thread`).
#[no_mangle]
pub extern "system" fn PsTerminateSystemThread(_status: NTSTATUS) -> NTSTATUS {
    require(PASSIVE_LEVEL, "PsTerminateSystemThread");
    if !SYSTEM_THREAD.with(|t| t.get()) {
        violation("PsTerminateSystemThread on a thread not created by PsCreateSystemThread");
    }
    TERMINATED.with(|t| t.set(true));
    STATUS_SUCCESS
}

// ------------------------------------------------------------------------------------------------
// Pool

#[derive(Default)]
struct Pool {
    blocks: HashMap<usize, (usize, u32)>,
}
static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(|| Mutex::new(Pool::default()));

fn pool_alloc(size: usize, tag: u32, zero: bool) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(size.max(1), 16) else {
        return core::ptr::null_mut();
    };
    // SAFETY: non-zero size, valid alignment.
    let p = unsafe {
        if zero {
            std::alloc::alloc_zeroed(layout)
        } else {
            std::alloc::alloc(layout)
        }
    };
    if !p.is_null() {
        lock(&POOL).blocks.insert(p as usize, (size.max(1), tag));
    }
    p.cast()
}

#[no_mangle]
pub extern "system" fn ExAllocatePoolWithTag(ty: POOL_TYPE, size: usize, tag: u32) -> *mut c_void {
    // Paged pool types have bit 0 set (PagedPool = 1, PagedPoolCacheAligned = 5, …).
    if ty & 1 == 1 {
        require(APC_LEVEL, "ExAllocatePoolWithTag(PagedPool)");
    } else {
        require(DISPATCH_LEVEL, "ExAllocatePoolWithTag");
    }
    if take_dispatch_alloc_failure() {
        return core::ptr::null_mut();
    }
    pool_alloc(size, tag, false)
}

#[no_mangle]
pub extern "system" fn ExAllocatePool2(flags: POOL_FLAGS, size: usize, tag: u32) -> *mut c_void {
    const POOL_FLAG_PAGED: u64 = 0x100;
    if flags & POOL_FLAG_PAGED != 0 {
        require(APC_LEVEL, "ExAllocatePool2(POOL_FLAG_PAGED)");
    } else {
        require(DISPATCH_LEVEL, "ExAllocatePool2");
    }
    if take_dispatch_alloc_failure() {
        return core::ptr::null_mut();
    }
    pool_alloc(size, tag, true)
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    require(DISPATCH_LEVEL, "ExFreePoolWithTag");
    let Some((size, t)) = lock(&POOL).blocks.remove(&(p as usize)) else {
        violation("ExFreePoolWithTag of a block not allocated from the pool (or freed twice)");
    };
    if t != tag {
        violation("ExFreePoolWithTag with a tag other than the allocation's");
    }
    // SAFETY: allocated above with this size and alignment.
    unsafe { std::alloc::dealloc(p.cast(), Layout::from_size_align_unchecked(size, 16)) };
}

// ------------------------------------------------------------------------------------------------
// IRPs

/// Who holds an IRP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum IrpOwner {
    Client,
    Transport,
}

static IRPS: LazyLock<Mutex<HashMap<usize, IrpOwner>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn irp_layout(n: i8) -> Layout {
    let size = core::mem::size_of::<IRP>()
        + (n.max(0) as usize) * core::mem::size_of::<IO_STACK_LOCATION>();
    Layout::from_size_align(size, 16).unwrap_or_else(|_| violation("IRP size"))
}

#[no_mangle]
pub extern "system" fn IoAllocateIrp(stack_size: i8, _charge: BOOLEAN) -> *mut IRP {
    require(DISPATCH_LEVEL, "IoAllocateIrp");
    if stack_size < 1 {
        violation("IoAllocateIrp with no stack location");
    }
    let layout = irp_layout(stack_size);
    // SAFETY: non-zero layout.
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut IRP;
    if p.is_null() {
        return p;
    }
    // SAFETY: p is a fresh, zeroed block of the IRP's size.
    unsafe {
        (*p).Type = 6;
        (*p).Size = layout.size() as u16;
        (*p).StackCount = stack_size;
        (*p).CurrentLocation = stack_size + 1;
        let first = (p as *mut u8).add(core::mem::size_of::<IRP>()) as *mut IO_STACK_LOCATION;
        (*p).Tail.Overlay.Stack.CurrentStackLocation = first.add(stack_size as usize);
    }
    lock(&IRPS).insert(p as usize, IrpOwner::Client);
    p
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: *mut IRP) {
    require(DISPATCH_LEVEL, "IoFreeIrp");
    match lock(&IRPS).remove(&(irp as usize)) {
        Some(IrpOwner::Client) => {}
        Some(IrpOwner::Transport) => {
            violation("IoFreeIrp on an IRP the transport still owns (not completed yet)")
        }
        None => violation("IoFreeIrp on an unknown IRP (freed twice?)"),
    }
    // SAFETY: allocated by IoAllocateIrp with this layout.
    unsafe {
        let n = (*irp).StackCount;
        std::alloc::dealloc(irp.cast(), irp_layout(n));
    }
}

/// `IoCancelIrp`: sets the cancel bit and, for an IRP the transport holds cancelable, has it
/// completed with `STATUS_CANCELLED` (what its cancel routine would do). Cancelling an IRP
/// that is no longer allocated is a violation (the caller must keep it alive across the call).
#[no_mangle]
pub unsafe extern "system" fn IoCancelIrp(irp: *mut IRP) -> BOOLEAN {
    require(DISPATCH_LEVEL, "IoCancelIrp");
    if !lock(&IRPS).contains_key(&(irp as usize)) {
        violation("IoCancelIrp on an IRP that is not allocated (freed already?)");
    }
    // SAFETY: a live IRP (checked above; the caller keeps it alive across the call).
    unsafe { (*irp).Cancel = TRUE };
    BOOLEAN::from(tcp::cancel(irp))
}

#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS) {
    require(DISPATCH_LEVEL, "IoReuseIrp");
    if lock(&IRPS).get(&(irp as usize)) != Some(&IrpOwner::Client) {
        violation("IoReuseIrp on an IRP the caller does not own");
    }
    // SAFETY: a live IRP owned by the caller.
    unsafe {
        let n = (*irp).StackCount;
        let layout = irp_layout(n);
        core::ptr::write_bytes(irp.cast::<u8>(), 0, layout.size());
        (*irp).Type = 6;
        (*irp).Size = layout.size() as u16;
        (*irp).StackCount = n;
        (*irp).CurrentLocation = n + 1;
        let first = (irp as *mut u8).add(core::mem::size_of::<IRP>()) as *mut IO_STACK_LOCATION;
        (*irp).Tail.Overlay.Stack.CurrentStackLocation = first.add(n as usize);
        (*irp).IoStatus.u.Status = status;
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoGetRelatedDeviceObject(
    file: *mut FILE_OBJECT,
) -> *mut DEVICE_OBJECT {
    // SAFETY: a live file object.
    unsafe { (*file).DeviceObject }
}

/// Hands an IRP to the transport (ownership check); used by `IofCallDriver` and for IRPs a
/// client returns from an event handler.
pub fn take_irp(irp: *mut IRP, what: &str) {
    let mut m = lock(&IRPS);
    match m.get_mut(&(irp as usize)) {
        Some(o @ IrpOwner::Client) => *o = IrpOwner::Transport,
        Some(IrpOwner::Transport) => {
            violation(&format!("{what}: IRP already owned by the transport"))
        }
        None => violation(&format!("{what}: unknown IRP (freed?)")),
    }
}

#[no_mangle]
pub unsafe extern "system" fn IofCallDriver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    require(DISPATCH_LEVEL, "IofCallDriver");
    if device != TCP_DEVICE.0 {
        violation("IofCallDriver to a device the emulation does not know");
    }
    take_irp(irp, "IofCallDriver");
    // SAFETY: a live IRP now owned by the transport; move to the next location.
    unsafe {
        if (*irp).CurrentLocation <= 1 {
            violation("IofCallDriver: no stack location left (IRP allocated with too few)");
        }
        (*irp).CurrentLocation -= 1;
        let sp = (*irp).Tail.Overlay.Stack.CurrentStackLocation.sub(1);
        (*irp).Tail.Overlay.Stack.CurrentStackLocation = sp;
        (*sp).DeviceObject = device;
    }
    tcp::dispatch(irp)
}

/// `IoCompleteRequest` as the transport calls it: runs the completion routines upwards at
/// DISPATCH_LEVEL, stopping at `STATUS_MORE_PROCESSING_REQUIRED`.
pub fn complete_irp(irp: *mut IRP, status: NTSTATUS, information: usize) {
    // SAFETY: the transport owns the IRP; its current location is the transport's.
    let file = unsafe {
        (*irp).IoStatus.u.Status = status;
        (*irp).IoStatus.Information = information;
        (*(*irp).Tail.Overlay.Stack.CurrentStackLocation).FileObject
    };
    if !file.is_null() && !lock(&OB).objects.contains_key(&(file as usize)) {
        violation(
            "an IRP completed for a file object that was already closed and freed: the client \
             dropped its last reference (ObDereferenceObject + ZwClose) while an IRP it sent for \
             the object was outstanding",
        );
    }
    at_dispatch("IRP completion routine", || {
        // SAFETY: the IRP is live and owned by the transport until handed back below.
        unsafe { IofCompleteRequest(irp, IO_NETWORK_INCREMENT) }
    });
}

#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: *mut IRP, _boost: i8) {
    require(DISPATCH_LEVEL, "IofCompleteRequest");
    // SAFETY: the caller (the transport) owns the live IRP.
    unsafe {
        let status = (*irp).IoStatus.u.Status;
        loop {
            if (*irp).CurrentLocation > (*irp).StackCount {
                violation(
                    "an IRP allocated with IoAllocateIrp completed to the I/O manager: its \
                     completion routine must return STATUS_MORE_PROCESSING_REQUIRED",
                );
            }
            let sp = (*irp).Tail.Overlay.Stack.CurrentStackLocation;
            if (*sp).Control & SL_PENDING_RETURNED != 0 {
                (*irp).PendingReturned = TRUE;
            }
            let routine = (*sp).CompletionRoutine;
            let ctx = (*sp).Context;
            let control = (*sp).Control;
            (*irp).CurrentLocation += 1;
            (*irp).Tail.Overlay.Stack.CurrentStackLocation = sp.add(1);
            let upper_dev = if (*irp).CurrentLocation > (*irp).StackCount {
                core::ptr::null_mut()
            } else {
                (*sp.add(1)).DeviceObject
            };
            let invoke = if (*irp).Cancel != 0 {
                control & SL_INVOKE_ON_CANCEL != 0
            } else if nt_success(status) {
                control & SL_INVOKE_ON_SUCCESS != 0
            } else {
                control & SL_INVOKE_ON_ERROR != 0
            };
            if let (Some(r), true) = (routine, invoke) {
                // The routine's owner gets the IRP back.
                if let Some(o) = lock(&IRPS).get_mut(&(irp as usize)) {
                    *o = IrpOwner::Client;
                }
                let ret = r(upper_dev, irp, ctx);
                if ret == STATUS_MORE_PROCESSING_REQUIRED {
                    return;
                }
                if let Some(o) = lock(&IRPS).get_mut(&(irp as usize)) {
                    *o = IrpOwner::Transport;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// MDLs

static MDLS: LazyLock<Mutex<HashSet<usize>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn mdl_layout(va: usize, len: u32) -> Layout {
    let pages = ((va & 0xfff) + len as usize).div_ceil(4096).max(1);
    Layout::from_size_align(core::mem::size_of::<MDL>() + pages * 8, 16)
        .unwrap_or_else(|_| violation("MDL size"))
}

#[no_mangle]
pub unsafe extern "system" fn IoAllocateMdl(
    va: *mut c_void,
    length: u32,
    secondary: BOOLEAN,
    _charge: BOOLEAN,
    irp: *mut IRP,
) -> *mut MDL {
    require(DISPATCH_LEVEL, "IoAllocateMdl");
    let layout = mdl_layout(va as usize, length);
    // SAFETY: non-zero layout.
    let m = unsafe { std::alloc::alloc_zeroed(layout) } as *mut MDL;
    if m.is_null() {
        return m;
    }
    // SAFETY: fresh MDL storage.
    unsafe {
        (*m).Size = layout.size() as i16;
        (*m).StartVa = ((va as usize) & !0xfff) as *mut c_void;
        (*m).ByteOffset = (va as usize & 0xfff) as u32;
        (*m).ByteCount = length;
        (*m).MdlFlags = MDL_ALLOCATED_FIXED_SIZE;
        if !irp.is_null() {
            if secondary != 0 {
                let mut p = (*irp).MdlAddress;
                if p.is_null() {
                    (*irp).MdlAddress = m;
                } else {
                    while !(*p).Next.is_null() {
                        p = (*p).Next;
                    }
                    (*p).Next = m;
                }
            } else {
                (*irp).MdlAddress = m;
            }
        }
    }
    lock(&MDLS).insert(m as usize);
    m
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: *mut MDL) {
    require(DISPATCH_LEVEL, "IoFreeMdl");
    if !lock(&MDLS).remove(&(mdl as usize)) {
        violation("IoFreeMdl on an unknown MDL (freed twice?)");
    }
    // SAFETY: allocated by IoAllocateMdl.
    unsafe {
        if (*mdl).MdlFlags & MDL_PAGES_LOCKED != 0 {
            violation("IoFreeMdl on an MDL whose pages are still locked (MmUnlockPages first)");
        }
        let va = MmGetMdlVirtualAddress(mdl) as usize;
        std::alloc::dealloc(mdl.cast(), mdl_layout(va, (*mdl).ByteCount));
    }
}

/// The calling thread's stack as `[low, high)` (glibc's `pthread_getattr_np`).
fn current_stack() -> Option<(usize, usize)> {
    /// `pthread_attr_t` is 56 bytes on x86-64 glibc; a larger, aligned buffer is fine.
    #[repr(C, align(16))]
    struct PthreadAttr([u8; 128]);
    extern "C" {
        fn pthread_self() -> usize;
        fn pthread_getattr_np(th: usize, attr: *mut PthreadAttr) -> i32;
        fn pthread_attr_getstack(
            attr: *const PthreadAttr,
            addr: *mut *mut c_void,
            size: *mut usize,
        ) -> i32;
        fn pthread_attr_destroy(attr: *mut PthreadAttr) -> i32;
    }
    let mut attr = PthreadAttr([0; 128]);
    let mut addr: *mut c_void = core::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: glibc calls on the current thread with valid out-pointers; the attribute object
    // is destroyed once initialised.
    unsafe {
        if pthread_getattr_np(pthread_self(), &mut attr) != 0 {
            return None;
        }
        let rc = pthread_attr_getstack(&attr, &mut addr, &mut size);
        pthread_attr_destroy(&mut attr);
        (rc == 0).then(|| (addr as usize, addr as usize + size))
    }
}

/// Allocations at DISPATCH_LEVEL still to fail (`emu::fail_dispatch_allocations`).
static FAIL_DISPATCH_ALLOCS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// Allocations at DISPATCH_LEVEL failed on purpose.
pub(crate) static FAILED_DISPATCH_ALLOCS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Makes the next `n` pool allocations (`ExAllocatePoolWithTag`, `ExAllocatePool2`) made at
/// DISPATCH_LEVEL fail (NULL), as they do when non-paged pool runs short. Allocations at
/// PASSIVE_LEVEL are left alone.
pub fn fail_dispatch_allocations(n: u32) {
    FAIL_DISPATCH_ALLOCS.store(n, Ordering::SeqCst);
}

/// Whether this allocation is to fail (consumes one pending failure when at DISPATCH_LEVEL).
fn take_dispatch_alloc_failure() -> bool {
    if irql() < DISPATCH_LEVEL {
        return false;
    }
    let hit = FAIL_DISPATCH_ALLOCS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if hit {
        FAILED_DISPATCH_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
    hit
}

/// Mappings of MDLs into system space still to fail (`emu::fail_mappings`).
static FAIL_MAPPINGS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
/// Mappings that failed on purpose.
pub(crate) static FAILED_MAPPINGS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Makes the next `n` calls of `MmMapLockedPagesSpecifyCache` fail (return NULL, as the routine
/// does with `BugCheckOnFailure` FALSE when system PTEs run short); while some are pending the
/// transport describes chained TSDUs with locked but unmapped MDLs, so clients must map them.
pub fn fail_mappings(n: u32) {
    FAIL_MAPPINGS.store(n, Ordering::SeqCst);
}

pub(crate) fn mapping_failures_pending() -> bool {
    FAIL_MAPPINGS.load(Ordering::SeqCst) > 0
}

#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: *mut MDL) {
    require(DISPATCH_LEVEL, "MmBuildMdlForNonPagedPool");
    // SAFETY: a live MDL.
    let va = unsafe { MmGetMdlVirtualAddress(mdl) } as usize;
    if let Some((lo, hi)) = current_stack() {
        if (lo..hi).contains(&va) {
            violation(
                "MmBuildMdlForNonPagedPool on a buffer on the kernel stack (not allowed even if \
                 the stack cannot be paged out; MmProbeAndLockPages it or use pool)",
            );
        }
    }
    // SAFETY: a live MDL.
    unsafe {
        (*mdl).MappedSystemVa = MmGetMdlVirtualAddress(mdl);
        (*mdl).MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
    }
}

#[no_mangle]
pub unsafe extern "system" fn MmProbeAndLockPages(
    mdl: *mut MDL,
    _mode: KPROCESSOR_MODE,
    _op: LOCK_OPERATION,
) {
    require(DISPATCH_LEVEL, "MmProbeAndLockPages");
    // SAFETY: a live MDL.
    unsafe { (*mdl).MdlFlags |= MDL_PAGES_LOCKED };
}

#[no_mangle]
pub unsafe extern "system" fn MmUnlockPages(mdl: *mut MDL) {
    require(DISPATCH_LEVEL, "MmUnlockPages");
    // SAFETY: a live MDL.
    unsafe {
        if (*mdl).MdlFlags & MDL_PAGES_LOCKED == 0 {
            violation("MmUnlockPages on an MDL that is not locked");
        }
        (*mdl).MdlFlags &= !(MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA);
    }
}

#[no_mangle]
pub unsafe extern "system" fn MmMapLockedPagesSpecifyCache(
    mdl: *mut MDL,
    _mode: KPROCESSOR_MODE,
    _cache: i32,
    _addr: *mut c_void,
    _bugcheck: u32,
    _priority: u32,
) -> *mut c_void {
    require(DISPATCH_LEVEL, "MmMapLockedPagesSpecifyCache");
    if FAIL_MAPPINGS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        FAILED_MAPPINGS.fetch_add(1, Ordering::Relaxed);
        return core::ptr::null_mut();
    }
    // SAFETY: a live MDL.
    unsafe {
        if (*mdl).MdlFlags & (MDL_PAGES_LOCKED | MDL_SOURCE_IS_NONPAGED_POOL) == 0 {
            violation(
                "MmMapLockedPagesSpecifyCache on an MDL that is neither locked nor non-paged",
            );
        }
        let va = MmGetMdlVirtualAddress(mdl);
        (*mdl).MappedSystemVa = va;
        (*mdl).MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA;
        va
    }
}

/// The bytes an MDL (not chain) describes, as the transport reads them. Checks that the client
/// made them resident.
///
/// # Safety
/// `mdl` must be live and describe readable memory.
pub unsafe fn mdl_bytes<'a>(mdl: *mut MDL) -> &'a mut [u8] {
    // SAFETY: per the contract.
    unsafe {
        if (*mdl).MdlFlags & (MDL_PAGES_LOCKED | MDL_SOURCE_IS_NONPAGED_POOL) == 0 {
            violation(
                "MDL handed to the transport is neither built for non-paged pool nor locked \
                 (MmBuildMdlForNonPagedPool / MmProbeAndLockPages)",
            );
        }
        let va = if (*mdl).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
            (*mdl).MappedSystemVa
        } else {
            MmGetMdlVirtualAddress(mdl)
        };
        core::slice::from_raw_parts_mut(va.cast::<u8>(), (*mdl).ByteCount as usize)
    }
}

pub(crate) fn outstanding() -> super::Outstanding {
    let ob = lock(&OB);
    super::Outstanding {
        irps: lock(&IRPS).len(),
        mdls: lock(&MDLS).len(),
        handles: ob.handles.len(),
        objects: ob.objects.len(),
        pool_blocks: lock(&POOL).blocks.len(),
        chained_tsdus: tcp::chained_outstanding(),
    }
}
