//! The layouts this crate writes are the ones a C compiler gives sDDF
//! 0.7's queue structures: the structures are declared here in C (field
//! names, types and order, as sDDF defines them), and `_Static_assert`s
//! generated from this crate's layout constants must compile. Checked with
//! the host's gcc (x86-64 and aarch64 lay these types out alike: natural
//! alignment, 4-byte enums, bit-fields allocated in their declared type's
//! unit) and, where installed, with `aarch64-linux-gnu-gcc` too.
use std::process::Command;

use septa_queue::blk::{info_layout, layout as blk, RequestRing, ResponseRing};
use septa_queue::net::{layout as net, NetRing};
use septa_queue::serial::layout as serial;
use septa_queue::Ring;

const DECLARATIONS: &str = r#"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_buff_desc { uint64_t io_or_offset; uint16_t len; uint8_t oid : 6; };
struct net_queue { uint16_t tail; uint16_t head; uint32_t consumer_signalled;
                   struct net_buff_desc buffers[]; };

struct serial_queue { uint32_t tail; uint32_t head; uint32_t producer_signalled; };

enum blk_req_code { BLK_REQ_READ, BLK_REQ_WRITE, BLK_REQ_FLUSH, BLK_REQ_BARRIER };
enum blk_resp_status { BLK_RESP_OK, BLK_RESP_ERR_UNSPEC, BLK_RESP_ERR_INVALID_PARAM,
                       BLK_RESP_ERR_IO, BLK_RESP_ERR_NO_DEVICE };
struct blk_req { enum blk_req_code code; uint64_t io_or_offset; uint64_t block_number;
                 uint16_t count; uint32_t id; };
struct blk_resp { enum blk_resp_status status; uint16_t success_count; uint32_t id; };
struct blk_req_queue { uint32_t head; uint32_t tail; bool plugged; struct blk_req buffers[]; };
struct blk_resp_queue { uint32_t head; uint32_t tail; struct blk_resp buffers[]; };
struct blk_storage_info { char serial_number[64]; bool read_only; bool ready;
                          uint16_t sector_size; uint16_t block_size; uint16_t queue_depth;
                          uint16_t cylinders, heads, blocks; uint64_t capacity; };

/* The oid bit-field: the byte at offset 10, bits 0..5. */
union oid_probe { struct net_buff_desc d; unsigned char bytes[16]; };
"#;

fn asserts() -> String {
    let mut c = String::from(DECLARATIONS);
    let mut check = |expr: String, value: usize| {
        c += &format!("_Static_assert({expr} == {value}, \"{expr}\");\n");
    };
    let off = |t: &str, f: &str| format!("offsetof(struct {t}, {f})");
    let size = |t: &str| format!("sizeof(struct {t})");
    let align = |t: &str| format!("_Alignof(struct {t})");

    check(off("net_queue", "tail"), net::TAIL);
    check(off("net_queue", "head"), net::HEAD);
    check(
        off("net_queue", "consumer_signalled"),
        net::CONSUMER_SIGNALLED,
    );
    check(off("net_queue", "buffers"), net::BUFFERS);
    check(align("net_queue"), net::ALIGN);
    check(size("net_buff_desc"), net::DESC_SIZE);
    check(off("net_buff_desc", "io_or_offset"), net::DESC_IO_OR_OFFSET);
    check(off("net_buff_desc", "len"), net::DESC_LEN);
    check(
        format!("sizeof(struct net_queue) + 512 * {}", size("net_buff_desc")),
        NetRing::bytes(512),
    );

    check(off("serial_queue", "tail"), serial::TAIL);
    check(off("serial_queue", "head"), serial::HEAD);
    check(
        off("serial_queue", "producer_signalled"),
        serial::PRODUCER_SIGNALLED,
    );
    check(size("serial_queue"), serial::SIZE);
    check(align("serial_queue"), serial::ALIGN);

    for (field, at) in ["code", "io_or_offset", "block_number", "count", "id"]
        .into_iter()
        .zip(blk::REQ_FIELDS)
    {
        check(off("blk_req", field), at);
    }
    check(size("blk_req"), blk::REQ_SIZE);
    for (field, at) in ["status", "success_count", "id"]
        .into_iter()
        .zip(blk::RESP_FIELDS)
    {
        check(off("blk_resp", field), at);
    }
    check(size("blk_resp"), blk::RESP_SIZE);
    check(off("blk_req_queue", "head"), blk::HEAD);
    check(off("blk_req_queue", "tail"), blk::TAIL);
    check(off("blk_req_queue", "plugged"), blk::PLUGGED);
    check(off("blk_req_queue", "buffers"), blk::REQ_BUFFERS);
    check(off("blk_resp_queue", "head"), blk::HEAD);
    check(off("blk_resp_queue", "tail"), blk::TAIL);
    check(off("blk_resp_queue", "buffers"), blk::RESP_BUFFERS);
    check(align("blk_req_queue"), RequestRing::ALIGN);
    check(align("blk_resp_queue"), ResponseRing::ALIGN);

    check(off("blk_storage_info", "read_only"), info_layout::READ_ONLY);
    check(off("blk_storage_info", "ready"), info_layout::READY);
    for (field, at) in [
        "sector_size",
        "block_size",
        "queue_depth",
        "cylinders",
        "heads",
        "blocks",
    ]
    .into_iter()
    .zip(info_layout::U16_FIELDS)
    {
        check(off("blk_storage_info", field), at);
    }
    check(off("blk_storage_info", "capacity"), info_layout::CAPACITY);
    check(size("blk_storage_info"), info_layout::SIZE);
    c
}

/// Compiles `source` with `compiler` (syntax only: the asserts are
/// compile-time); `None` if the compiler is not installed.
fn compile(compiler: &str, source: &str, extra: &[&str]) -> Option<Result<(), String>> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("c-layout-{}-{compiler}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("layout.c");
    std::fs::write(&file, source).unwrap();
    let out = Command::new(compiler)
        .args([
            "-std=c11",
            "-ffreestanding",
            "-fsyntax-only",
            "-Wall",
            "-Werror",
        ])
        .args(extra)
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[test]
fn the_c_compiler_agrees_with_every_offset_and_size() {
    let source = asserts();
    match compile("gcc", &source, &[]) {
        Some(result) => result.unwrap(),
        None => panic!("gcc is needed (apt-get install --no-install-recommends gcc)"),
    }
    if let Some(result) = compile("aarch64-linux-gnu-gcc", &source, &[]) {
        result.unwrap();
    }
}

#[test]
fn the_oid_bit_field_is_the_low_six_bits_of_byte_ten() {
    // Where a bit-field goes is not a constant expression: a C program sets
    // oid to all ones and prints the descriptor's bytes.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = format!(
        "{DECLARATIONS}
#include <stdio.h>
int main(void) {{
    union oid_probe p = {{ .bytes = {{ 0 }} }};
    p.d.oid = 0x3f;
    for (int i = 0; i < 16; i++) printf(\"%d \", p.bytes[i]);
    return 0;
}}
"
    );
    std::fs::write(dir.join("oid.c"), prog).unwrap();
    let built = Command::new("gcc")
        .current_dir(&dir)
        .args(["-std=c11", "-o", "oid", "oid.c"])
        .status()
        .expect("gcc is needed");
    assert!(built.success());
    let out = Command::new(dir.join("oid")).output().unwrap();
    let bytes: Vec<u8> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let mut expect = vec![0u8; 16];
    expect[net::DESC_OID] = net::OID_MASK;
    assert_eq!(bytes, expect);
}
