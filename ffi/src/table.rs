//! The SA table: the SAD (inbound SAs by SPI and addresses) and the SPD
//! (ordered policies: protect with an SA, bypass, discard).

use crate::args::{bytes, object, put};
use crate::esp::{
    Direction, Frame, Outcome, checked_frames, config_copy, copy_out, espgcm_inbound, espgcm_outbound, espgcm_packet,
    espgcm_sa_config, espgcm_selector, first_failure, optional_ip, run_burst, selectors,
};
use crate::result::{
    ESPGCM_ERR_ESP_NO_POLICY, ESPGCM_ERR_ESP_NO_SA, ESPGCM_ERR_INVALID_ARGUMENT, ESPGCM_ERR_NULL_PARAMETER, ESPGCM_OK,
    esp_code, guard,
};
use core::ffi::c_int;
use core::ptr::null_mut;
use espgcm::esp::{Action, Inbound, PacketBuffer, Policy, SaTable};
use std::sync::Arc;

/// What a policy does with the packets it covers: one of the
/// `ESPGCM_ACTION_*` constants.
pub type espgcm_action = u32;
/// Seal them with the policy's outbound SA.
pub const ESPGCM_ACTION_PROTECT: espgcm_action = 0;
/// Send them as they are.
pub const ESPGCM_ACTION_BYPASS: espgcm_action = 1;
/// Drop them.
pub const ESPGCM_ACTION_DISCARD: espgcm_action = 2;

/// The SA table of a data plane: inbound SAs found by SPI (and destination,
/// and source: the most specific entry wins) and an ordered list of
/// outbound policies. Lookups take no lock; every function may run on many
/// threads at once (changes are published atomically, and a packet in
/// flight keeps the SA it found). Made by `espgcm_sa_table_new`, released
/// by `espgcm_sa_table_free`.
pub struct espgcm_sa_table(SaTable);

/// Make an empty SA table.
///
/// # Safety
/// `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_new(out: *mut *mut espgcm_sa_table) -> c_int {
    guard(|| {
        let table = Box::into_raw(Box::new(espgcm_sa_table(SaTable::new())));
        // SAFETY: out is writable (this function's contract);
        // espgcm_sa_table_free takes the Box back.
        unsafe { put(out, table) }.inspect_err(|_| {
            // SAFETY: the table was not handed out; take it back.
            drop(unsafe { Box::from_raw(table) });
        })
    })
}

/// Release an SA table and its references to SAs (handles the caller holds
/// stay valid). NULL is fine.
///
/// # Safety
/// `table` must be NULL or a live table no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_free(table: *mut espgcm_sa_table) {
    if table.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: table came from Box::into_raw in espgcm_sa_table_new and
        // is freed once (this function's contract).
        drop(unsafe { Box::from_raw(table) });
        Ok(())
    });
}

/// Make an inbound SA from a configuration (copied) and install it, found by
/// its SPI and, when given, the packet's destination (and source). `*out`
/// receives a handle to the SA (for its counters; free it with
/// `espgcm_inbound_free`), or NULL on error; pass NULL for `out` if you do
/// not want one. `ESPGCM_ERR_ESP_SA_EXISTS` if an SA with the same SPI
/// and addresses is already installed, `ESPGCM_ERR_ESP_INVALID` for a bad
/// setting.
///
/// # Safety
/// `table` and `cfg` must be live; `dst` and `src` NULL or valid; `out` NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_add_inbound(
    table: *const espgcm_sa_table,
    cfg: *const espgcm_sa_config,
    dst: *const crate::esp::espgcm_ip,
    src: *const crate::esp::espgcm_ip,
    out: *mut *mut espgcm_inbound,
) -> c_int {
    guard(|| {
        if !out.is_null() {
            // SAFETY: out is writable when not NULL (this function's contract).
            unsafe { put(out, null_mut()) }?;
        }
        // SAFETY: table and cfg are live, dst and src NULL or valid (this
        // function's contract).
        let (table, cfg, dst, src) =
            unsafe { (object(table)?, config_copy(cfg)?, optional_ip(dst)?, optional_ip(src)?) };
        let sa = Inbound::new(cfg).map_err(|e| esp_code(&e))?;
        let handle = table.0.add_inbound(sa, dst, src).map_err(|e| esp_code(&e))?;
        if !out.is_null() {
            // SAFETY: out is writable; espgcm_inbound_free takes the Box back.
            unsafe { put(out, Box::into_raw(Box::new(espgcm_inbound(handle)))) }?;
        }
        Ok(())
    })
}

/// Remove the inbound SA with this SPI and addresses (`ESPGCM_ERR_ESP_NO_SA`
/// if there is none). Packets being opened with it finish; handles to it
/// stay valid.
///
/// # Safety
/// `table` must be live; `dst` and `src` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_remove_inbound(
    table: *const espgcm_sa_table,
    spi: u32,
    dst: *const crate::esp::espgcm_ip,
    src: *const crate::esp::espgcm_ip,
) -> c_int {
    guard(|| {
        // SAFETY: table is live, dst and src NULL or valid (this function's contract).
        let (table, dst, src) = unsafe { (object(table)?, optional_ip(dst)?, optional_ip(src)?) };
        table.0.remove_inbound(spi, dst, src).map(drop).ok_or(ESPGCM_ERR_ESP_NO_SA)
    })
}

/// How many inbound SAs are installed.
///
/// # Safety
/// `table` must be live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_inbound_len(table: *const espgcm_sa_table, out: *mut usize) -> c_int {
    guard(|| {
        // SAFETY: table is live and out writable (this function's contract).
        unsafe { put(out, object(table)?.0.inbound_len()) }
    })
}

/// Append a policy to the SPD (consulted after those before it): packets
/// that one of the `n` selectors covers (none: every packet, for a last,
/// catch-all policy) are protected with `sa` (`ESPGCM_ACTION_PROTECT`; the
/// table keeps its own reference to the SA), bypassed or discarded (`sa`
/// may then be NULL).
///
/// # Safety
/// `table` must be live; `selectors` must point to `n` valid selectors (or
/// be NULL with `n` 0); `sa` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_push_policy(
    table: *const espgcm_sa_table,
    selector_list: *const espgcm_selector,
    n: usize,
    action: espgcm_action,
    sa: *const espgcm_outbound,
) -> c_int {
    guard(|| {
        // SAFETY: table is live, the selectors valid (this function's contract).
        let (table, selectors) = unsafe { (object(table)?, selectors(selector_list, n)?) };
        let action = match action {
            ESPGCM_ACTION_PROTECT => {
                // SAFETY: sa is a live handle (this function's contract).
                Action::Protect(unsafe { object(sa) }?.0.clone())
            }
            ESPGCM_ACTION_BYPASS => Action::Bypass,
            ESPGCM_ACTION_DISCARD => Action::Discard,
            _ => return Err(ESPGCM_ERR_INVALID_ARGUMENT),
        };
        table.0.push_policy(Policy { selectors, action });
        Ok(())
    })
}

/// Remove every policy that protects with `sa`.
///
/// # Safety
/// `table` and `sa` must be live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_remove_policies_for(
    table: *const espgcm_sa_table,
    sa: *const espgcm_outbound,
) -> c_int {
    guard(|| {
        // SAFETY: table and sa are live (this function's contract).
        let (table, sa) = unsafe { (object(table)?, object(sa)?) };
        table.0.remove_policies_for(&sa.0);
        Ok(())
    })
}

/// What the SPD says about a packet to be sent (`len` bytes at `pkt`): the
/// first policy whose selectors cover it. `*action` receives its action and,
/// for `ESPGCM_ACTION_PROTECT`, `*sa` a handle to the SA to seal it with
/// (free it with `espgcm_outbound_free`; NULL otherwise).
/// `ESPGCM_ERR_ESP_NO_POLICY` when no policy covers the packet (RFC 4301:
/// discard it); the errors of reading its headers.
///
/// # Safety
/// `table` must be live; `pkt` must point to `len` readable bytes; `action`
/// and `sa` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_lookup_outbound(
    table: *const espgcm_sa_table,
    pkt: *const u8,
    len: usize,
    action: *mut espgcm_action,
    sa: *mut *mut espgcm_outbound,
) -> c_int {
    guard(|| {
        if action.is_null() {
            return Err(ESPGCM_ERR_NULL_PARAMETER);
        }
        // SAFETY: sa is writable (this function's contract).
        unsafe { put(sa, null_mut()) }?;
        // SAFETY: table is live, pkt holds len readable bytes (this
        // function's contract).
        let (table, pkt) = unsafe { (object(table)?, bytes(pkt, len)?) };
        let found = table.0.outbound_for(pkt).map_err(|e| esp_code(&e))?.ok_or(ESPGCM_ERR_ESP_NO_POLICY)?;
        let (code, handle) = match found {
            Action::Protect(outbound) => (ESPGCM_ACTION_PROTECT, Box::into_raw(Box::new(espgcm_outbound(outbound)))),
            Action::Bypass => (ESPGCM_ACTION_BYPASS, null_mut()),
            _ => (ESPGCM_ACTION_DISCARD, null_mut()),
        };
        // SAFETY: action and sa are writable (this function's contract);
        // espgcm_outbound_free takes the Box back.
        unsafe {
            put(action, code)?;
            put(sa, handle)
        }
    })
}

/// Find the inbound SA of a received packet (by SPI and addresses) and open
/// it with that SA, as `espgcm_inbound_open` does; `ESPGCM_ERR_ESP_NO_SA`
/// when none is installed.
///
/// The calling thread keeps the table's inbound SAs of its last call until
/// its next one (which sees every change made meanwhile), so that a call
/// on an unchanged table takes no locked operation: an inbound SA removed
/// meanwhile is freed, key included, by the table's next change (or when
/// the table is freed) once every thread that kept it has let go (at its
/// next call, when it ends, or by `espgcm_sa_table_release_kept`).
///
/// # Safety
/// As for `espgcm_inbound_open`, with a live `table`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_open(
    table: *const espgcm_sa_table,
    pkt: *const u8,
    len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: table is live (this function's contract).
        let table = unsafe { object(table) }?;
        if out_cap < len {
            // As espgcm_inbound_open: refuse before the replay window takes it.
            // SAFETY: out_len is writable (this function's contract).
            unsafe { put(out_len, len) }?;
            return Err(crate::result::ESPGCM_ERR_BUFFER_TOO_SMALL);
        }
        // SAFETY: the buffers are as copy_out needs (this function's contract).
        unsafe { copy_out(pkt, len, out, out_cap, out_len, |p, v| table.0.open(p, v)) }
    })
}

/// Let go of what `espgcm_sa_table_open` keeps on the calling thread, so
/// that inbound SAs removed since its last call can be freed (and their
/// keys wiped) by the table's next change without waiting for this
/// thread's next call: for a packet thread about to wait a long time for
/// traffic.
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_sa_table_release_kept() {
    SaTable::release_kept();
}

/// Open runs of packets that belong to one SA together.
fn open_by_sa<B: PacketBuffer + Outcome>(table: &SaTable, items: &mut [B]) -> Result<(), c_int> {
    let mut first_error = None;
    let mut rest = items;
    while let Some(first) = rest.first_mut() {
        let sa: Arc<Inbound> = match table.inbound_for(first.data()) {
            Ok(sa) => sa,
            Err(e) => {
                let code = esp_code(&e);
                first.set_result(code);
                first_error.get_or_insert(code);
                rest = &mut core::mem::take(&mut rest)[1..];
                continue;
            }
        };
        // The run: this packet and the ones after it that the same SA takes.
        let run = 1 + rest[1..]
            .iter()
            .take_while(|p| table.inbound_for(p.data()).is_ok_and(|other| Arc::ptr_eq(&other, &sa)))
            .count();
        let (now, later) = core::mem::take(&mut rest).split_at_mut(run);
        if let Err(code) = run_burst(Direction::Open(&sa), now) {
            first_error.get_or_insert(code);
        }
        rest = later;
    }
    first_error.map_or(Ok(()), Err)
}

/// Open `n` packets where they lie (as `espgcm_inbound_open_burst`), each
/// with the inbound SA the table has for it; consecutive packets of one SA
/// are opened as one burst. A packet with no SA gets
/// `ESPGCM_ERR_ESP_NO_SA`.
///
/// # Safety
/// As for `espgcm_inbound_open_burst`, with a live `table`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_sa_table_open_burst(
    table: *const espgcm_sa_table,
    pkts: *mut espgcm_packet,
    n: usize,
) -> c_int {
    guard(|| {
        // SAFETY: table is live (this function's contract).
        let table = unsafe { object(table) }?;
        // SAFETY: the packets are as checked_frames needs (this function's contract).
        let (frames, all_good) = unsafe { checked_frames(pkts, n) }?;
        if all_good {
            return open_by_sa(&table.0, frames);
        }
        let mut good: Vec<&mut Frame> = frames.iter_mut().filter(|f| f.result() == ESPGCM_OK).collect();
        let _ = open_by_sa(&table.0, &mut good);
        first_failure(frames)
    })
}
