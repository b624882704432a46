;; SIMD scans of messages: relaxed canonicalization of body lines and of header fields, and line-ending checks.
;;
;; relaxed: relaxed body canonicalization (RFC 6376 §3.4.4) of whole lines.
;; Input: memory[in, in + len) holds complete CRLF-terminated lines starting at a line start; memory[in + len]
;; is 0 (a sentinel for the one-byte look-ahead). Output: memory[out, out + result) holds the lines
;; with every WSP run reduced to one SP and WSP before each CRLF removed; the caller leaves 16 bytes
;; of room after it. Empty lines are kept: the caller drops those at the end of the body.
;;
;; Speed: a block is "irregular" where a WSP run may start: HT, or a pair of bytes whose larger is
;; SP (one max and one compare per block: SP followed by a byte <= SP, and also a rarer control byte
;; followed by SP, which is then copied as it is). Clean blocks are copied 64 bytes per step; at an
;; irregular block the clean prefix is copied whole and only the WSP run is handled byte by byte.
(module
  (memory (export "memory") 1)
  (func (export "relaxed") (param $in i32) (param $len i32) (param $out i32) (result i32)
    (local $i i32) (local $o i32) (local $c i32) (local $mask i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $sp v128) (local $ht v128)
    ;; From here on $len is the end offset of the input.
    (local.set $i (local.get $in))
    (local.set $len (i32.add (local.get $in) (local.get $len)))
    (local.set $sp (i8x16.splat (i32.const 32)))
    (local.set $ht (i8x16.splat (i32.const 9)))
    (local.set $o (local.get $out))
    (block $done
      (loop $main
        (block $run
          ;; 64 bytes at a time while all four blocks are clean.
          (block $by16
            (loop $fast64
              (br_if $by16 (i32.gt_u (i32.add (local.get $i) (i32.const 64)) (local.get $len)))
              (local.set $a0 (v128.load (local.get $i)))
              (local.set $a1 (v128.load offset=16 (local.get $i)))
              (local.set $a2 (v128.load offset=32 (local.get $i)))
              (local.set $a3 (v128.load offset=48 (local.get $i)))
              (br_if $by16
                (v128.any_true
                  (v128.or
                    (v128.or
                      (v128.or
                        (v128.or (i8x16.eq (local.get $a0) (local.get $ht)) (i8x16.eq (local.get $a1) (local.get $ht)))
                        (v128.or (i8x16.eq (local.get $a2) (local.get $ht)) (i8x16.eq (local.get $a3) (local.get $ht))))
                      (v128.or
                        (i8x16.eq (i8x16.max_u (local.get $a0) (v128.load offset=1 (local.get $i))) (local.get $sp))
                        (i8x16.eq (i8x16.max_u (local.get $a1) (v128.load offset=17 (local.get $i))) (local.get $sp))))
                    (v128.or
                      (i8x16.eq (i8x16.max_u (local.get $a2) (v128.load offset=33 (local.get $i))) (local.get $sp))
                      (i8x16.eq (i8x16.max_u (local.get $a3) (v128.load offset=49 (local.get $i))) (local.get $sp))))))
              (v128.store (local.get $o) (local.get $a0))
              (v128.store offset=16 (local.get $o) (local.get $a1))
              (v128.store offset=32 (local.get $o) (local.get $a2))
              (v128.store offset=48 (local.get $o) (local.get $a3))
              (local.set $i (i32.add (local.get $i) (i32.const 64)))
              (local.set $o (i32.add (local.get $o) (i32.const 64)))
              (br $fast64)))
          ;; 16 bytes at a time up to the first irregular byte.
          (block $tail
            (loop $fast16
              (br_if $tail (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $len)))
              (local.set $a0 (v128.load (local.get $i)))
              (local.set $mask
                (i8x16.bitmask
                  (v128.or
                    (i8x16.eq (local.get $a0) (local.get $ht))
                    (i8x16.eq (i8x16.max_u (local.get $a0) (v128.load offset=1 (local.get $i))) (local.get $sp)))))
              (v128.store (local.get $o) (local.get $a0))
              (if (local.get $mask)
                (then
                  ;; Keep the clean prefix (the rest of the stored block is overwritten later).
                  (local.set $c (i32.ctz (local.get $mask)))
                  (local.set $i (i32.add (local.get $i) (local.get $c)))
                  (local.set $o (i32.add (local.get $o) (local.get $c)))
                  (br $run)))
              (local.set $i (i32.add (local.get $i) (i32.const 16)))
              (local.set $o (i32.add (local.get $o) (i32.const 16)))
              (br $fast16)))
          ;; Fewer than 16 bytes left: byte at a time.
          (loop $bytes
            (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
            (local.set $c (i32.load8_u (local.get $i)))
            (br_if $run (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9))))
            (i32.store8 (local.get $o) (local.get $c))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (br $bytes)))
        ;; A candidate at $i. Not WSP (a control byte before SP, e.g. the LF before a line's leading
        ;; SP): copy it and scan on.
        (local.set $c (i32.load8_u (local.get $i)))
        (if (i32.and (i32.ne (local.get $c) (i32.const 32)) (i32.ne (local.get $c) (i32.const 9)))
          (then
            (i32.store8 (local.get $o) (local.get $c))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (br $main)))
        ;; A WSP run starts at $i: skip it; before CRLF it vanishes, elsewhere it becomes one SP.
        (loop $skip
          (local.set $c (i32.load8_u (local.get $i)))
          (if (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
            (then
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $skip))))
        (if (i32.and (i32.eq (local.get $c) (i32.const 13)) (i32.eq (i32.load8_u offset=1 (local.get $i)) (i32.const 10)))
          (then
            (i32.store16 (local.get $o) (i32.const 0x0a0d))
            (local.set $o (i32.add (local.get $o) (i32.const 2)))
            (local.set $i (i32.add (local.get $i) (i32.const 2))))
          (else
            (i32.store8 (local.get $o) (i32.const 32))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))))
        (br $main)))
    (i32.sub (local.get $o) (local.get $out)))
  ;; first_bad_byte: the offset (from at) of the first NUL, bare CR (not followed by LF) or bare LF
  ;; (not preceded by CR) in memory[at, at + len), or len when there is none. at >= 1; memory[at - 1]
  ;; holds the byte before the region and memory[at + len] the byte after it (the caller sets both).
  (func (export "first_bad_byte") (param $at i32) (param $len i32) (result i32)
    (local $i i32) (local $end i32) (local $a v128) (local $mask i32) (local $c i32)
    (local $cr v128) (local $lf v128)
    (local.set $cr (i8x16.splat (i32.const 13)))
    (local.set $lf (i8x16.splat (i32.const 10)))
    (local.set $i (local.get $at))
    (local.set $end (i32.add (local.get $len) (local.get $at)))
    (block $tail
      (loop $blocks
        (br_if $tail (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $end)))
        (local.set $a (v128.load (local.get $i)))
        (local.set $mask
          (i8x16.bitmask
            (v128.or
              (v128.or
                (i8x16.eq (local.get $a) (v128.const i32x4 0 0 0 0))
                (v128.and (i8x16.eq (local.get $a) (local.get $lf))
                          (i8x16.ne (v128.load offset=0 (i32.sub (local.get $i) (i32.const 1))) (local.get $cr))))
              (v128.and (i8x16.eq (local.get $a) (local.get $cr))
                        (i8x16.ne (v128.load offset=1 (local.get $i)) (local.get $lf))))))
        (if (local.get $mask)
          (then (return (i32.sub (i32.add (local.get $i) (i32.ctz (local.get $mask))) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $blocks)))
    (block $none
      (loop $bytes
        (br_if $none (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (if (i32.or
              (i32.eqz (local.get $c))
              (i32.or
                (i32.and (i32.eq (local.get $c) (i32.const 10)) (i32.ne (i32.load8_u (i32.sub (local.get $i) (i32.const 1))) (i32.const 13)))
                (i32.and (i32.eq (local.get $c) (i32.const 13)) (i32.ne (i32.load8_u offset=1 (local.get $i)) (i32.const 10)))))
          (then (return (i32.sub (local.get $i) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (local.get $len))
;; header_relaxed: relaxed header canonicalization (RFC 6376 §3.4.2) of `count` fields, written one
  ;; after the other from `out`; returns the end offset. Field k is described at desc + 16k by four i32:
  ;; start, end (its bytes in memory, final CRLF included), skip_from, skip_to (a range after the colon
  ;; left out, e.g. the value of b=; skip_from = -1 for none). The same rules as relaxedInto in
  ;; canonicalize-header.ts: name lower-cased without WSP before the colon, CR and LF dropped, each WSP
  ;; run after the value's first content one SP, no WSP at the end of the value, CRLF appended.
  ;;
  ;; Speed: from a visible byte on, 16-byte blocks with no byte below SP and no SP followed by a byte
  ;; <= SP are copied whole; a block is only taken when its look-ahead byte is inside the range.
  (func $relaxed_value (param $i i32) (param $to i32) (param $o i32) (param $vs i32) (result i32)
    (local $c i32) (local $a v128) (local $mask i32) (local $sp v128)
    (local.set $sp (i8x16.splat (i32.const 32)))
    (block $done
      (loop $main
        (br_if $done (i32.ge_u (local.get $i) (local.get $to)))
        (local.set $c (i32.load8_u (local.get $i)))
        (if (i32.gt_u (local.get $c) (i32.const 32))
          (then
            (block $scalar
              (loop $blocks
                (br_if $scalar (i32.gt_u (i32.add (local.get $i) (i32.const 17)) (local.get $to)))
                (local.set $a (v128.load (local.get $i)))
                (local.set $mask
                  (i8x16.bitmask
                    (v128.or
                      (i8x16.lt_u (local.get $a) (local.get $sp))
                      (v128.and (i8x16.eq (local.get $a) (local.get $sp)) (i8x16.le_u (v128.load offset=1 (local.get $i)) (local.get $sp))))))
                (v128.store (local.get $o) (local.get $a))
                (if (local.get $mask)
                  (then
                    ;; Keep the clean prefix; the irregular byte goes through the byte path.
                    (local.set $c (i32.ctz (local.get $mask)))
                    (local.set $i (i32.add (local.get $i) (local.get $c)))
                    (local.set $o (i32.add (local.get $o) (local.get $c)))
                    (br $scalar)))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (local.set $o (i32.add (local.get $o) (i32.const 16)))
                (br $blocks)))
            (local.set $c (i32.load8_u (local.get $i)))))
        ;; One byte.
        (if (i32.gt_u (local.get $c) (i32.const 32))
          (then
            (i32.store8 (local.get $o) (local.get $c))
            (local.set $o (i32.add (local.get $o) (i32.const 1))))
          (else
            (if (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
              (then
                (if (i32.and (i32.gt_u (local.get $o) (local.get $vs))
                             (i32.ne (i32.load8_u (i32.sub (local.get $o) (i32.const 1))) (i32.const 32)))
                  (then
                    (i32.store8 (local.get $o) (i32.const 32))
                    (local.set $o (i32.add (local.get $o) (i32.const 1))))))
              (else
                (if (i32.and (i32.ne (local.get $c) (i32.const 13)) (i32.ne (local.get $c) (i32.const 10)))
                  (then
                    (i32.store8 (local.get $o) (local.get $c))
                    (local.set $o (i32.add (local.get $o) (i32.const 1)))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $main)))
    (local.get $o))
  
  (func (export "header_relaxed") (param $count i32) (param $desc i32) (param $out i32) (result i32)
    (local $k i32) (local $i i32) (local $end i32) (local $from i32) (local $to i32)
    (local $o i32) (local $name_end i32) (local $vs i32) (local $c i32)
    (local.set $o (local.get $out))
    (block $fields_done
      (loop $fields
        (br_if $fields_done (i32.ge_u (local.get $k) (local.get $count)))
        (local.set $i (i32.load (local.get $desc)))
        (local.set $end (i32.load offset=4 (local.get $desc)))
        (local.set $from (i32.load offset=8 (local.get $desc)))
        (local.set $to (i32.load offset=12 (local.get $desc)))
        ;; Name: lower-cased, CR and LF dropped, WSP before the colon dropped.
        (local.set $name_end (local.get $o))
        (block $name_done
          (loop $name
            (br_if $name_done (i32.ge_u (local.get $i) (local.get $end)))
            (local.set $c (i32.load8_u (local.get $i)))
            (br_if $name_done (i32.eq (local.get $c) (i32.const 58)))
            (if (i32.and (i32.ne (local.get $c) (i32.const 13)) (i32.ne (local.get $c) (i32.const 10)))
              (then
                (i32.store8 (local.get $o)
                  (select (i32.add (local.get $c) (i32.const 32)) (local.get $c)
                    (i32.lt_u (i32.sub (local.get $c) (i32.const 65)) (i32.const 26))))
                (local.set $o (i32.add (local.get $o) (i32.const 1)))
                (if (i32.and (i32.ne (local.get $c) (i32.const 32)) (i32.ne (local.get $c) (i32.const 9)))
                  (then (local.set $name_end (local.get $o))))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $name)))
        (i32.store8 (local.get $name_end) (i32.const 58))
        (local.set $o (i32.add (local.get $name_end) (i32.const 1)))
        (local.set $vs (local.get $o))
        (if (i32.and (i32.gt_s (local.get $to) (local.get $from)) (i32.gt_s (local.get $from) (local.get $i)))
          (then
            (local.set $o (call $relaxed_value (i32.add (local.get $i) (i32.const 1)) (local.get $from) (local.get $o) (local.get $vs)))
            (local.set $o (call $relaxed_value (local.get $to) (local.get $end) (local.get $o) (local.get $vs))))
          (else
            (local.set $o (call $relaxed_value (i32.add (local.get $i) (i32.const 1)) (local.get $end) (local.get $o) (local.get $vs)))))
        ;; No WSP at the end of the value.
        (if (i32.and (i32.gt_u (local.get $o) (local.get $vs))
                     (i32.eq (i32.load8_u (i32.sub (local.get $o) (i32.const 1))) (i32.const 32)))
          (then (local.set $o (i32.sub (local.get $o) (i32.const 1)))))
        (i32.store16 (local.get $o) (i32.const 0x0a0d))
        (local.set $o (i32.add (local.get $o) (i32.const 2)))
        (local.set $desc (i32.add (local.get $desc) (i32.const 16)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $fields)))
    (local.get $o))
)
