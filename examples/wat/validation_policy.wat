;; A dlq-policy plugin in WebAssembly text, no toolchain needed: `weir plugin upload
;; --file validation_policy.wasm` after `wat2wasm`, or as `weir demo` does it.
;;
;; A failure whose reason starts with "validation" goes to the dead-letter topic at
;; once (retrying cannot fix bad input); any other failure is retried after 200 ms, at
;; most 3 times (the 4th failed delivery is dead-lettered).
;;
;; Input (plugins/ABI.md): attempt u32 (1 = the first delivery), group str, reason str,
;; then the message; a str is a u32 length and the bytes. Result: milliseconds to wait
;; before the retry, -1 dead letter, -2 discard.
(module
  (@custom "weir-manifest" "name=validation_policy\nversion=1.0.0\nkind=dlq-policy\ndescription=validation failures to the DLQ at once, others retried 3 times after 200 ms\n")
  (memory (export "memory") 1)
  (data (i32.const 0) "validation")
  (func (export "weir_abi_version") (result i32) i32.const 1)
  (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "weir_dealloc") (param i32 i32))
  (func (export "weir_dlq_policy") (param $ptr i32) (param $len i32) (result i64)
    (local $reason i32) (local $i i32)
    ;; the reason str follows attempt (4 bytes) and the group str (4 + its length)
    (local.set $reason
      (i32.add (i32.add (local.get $ptr) (i32.const 8)) (i32.load (i32.add (local.get $ptr) (i32.const 4)))))
    (if (i32.ge_u (i32.load (local.get $reason)) (i32.const 10))
      (then
        (block $differs
          (loop $compare
            (br_if $differs
              (i32.ne
                (i32.load8_u (i32.add (i32.add (local.get $reason) (i32.const 4)) (local.get $i)))
                (i32.load8_u (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $compare (i32.lt_u (local.get $i) (i32.const 10))))
          (return (i64.const -1)))))
    (if (i32.gt_u (i32.load (local.get $ptr)) (i32.const 3))
      (then (return (i64.const -1))))
    (i64.const 200)))
