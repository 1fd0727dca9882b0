;; Newline count of a chunk, 16 bytes per step (WebAssembly SIMD): src/tools/fastq-bytes.ts runs it.
;; Its bytes there (NEWLINES_WASM) are this file assembled:
;;   npx -p wabt@1.0.39 wat2wasm src/tools/newlines.wat -o /tmp/newlines.wasm && base64 -w0 /tmp/newlines.wasm
;; The memory is one MiB (16 pages): the caller copies a chunk of at most that to offset 0.
(module
  (memory (export "memory") 16)
  ;; newlines(len): how many bytes equal to 0x0a among memory[0..len)
  (func (export "newlines") (param $len i32) (result i32)
    (local $p i32) (local $end16 i32) (local $blockEnd i32) (local $n i32)
    (local $acc v128) (local $tot v128) (local $nl v128)
    (local.set $nl (i8x16.splat (i32.const 10)))
    (local.set $end16 (i32.and (local.get $len) (i32.const -16)))
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $p) (local.get $end16)))
        ;; at most 255 blocks per byte accumulator
        (local.set $blockEnd (i32.add (local.get $p) (i32.const 4080)))
        (if (i32.gt_u (local.get $blockEnd) (local.get $end16)) (then (local.set $blockEnd (local.get $end16))))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (loop $inner
          (local.set $acc (i8x16.sub (local.get $acc) (i8x16.eq (v128.load (local.get $p)) (local.get $nl))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br_if $inner (i32.lt_u (local.get $p) (local.get $blockEnd))))
        (local.set $tot (i32x4.add (local.get $tot) (i32x4.extadd_pairwise_i16x8_u (i16x8.extadd_pairwise_i8x16_u (local.get $acc)))))
        (br $outer)))
    (local.set $n (i32.add (i32.add (i32x4.extract_lane 0 (local.get $tot)) (i32x4.extract_lane 1 (local.get $tot)))
                           (i32.add (i32x4.extract_lane 2 (local.get $tot)) (i32x4.extract_lane 3 (local.get $tot)))))
    (block $tdone
      (loop $tail
        (br_if $tdone (i32.ge_u (local.get $p) (local.get $len)))
        (local.set $n (i32.add (local.get $n) (i32.eq (i32.load8_u (local.get $p)) (i32.const 10))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $tail)))
    (local.get $n)))
