//! Open enums: every wire value maps to a variant, unknown ones included.

/// Declares a `Copy` enum over an integer type with named values and an
/// `Unknown(T)` variant, plus lossless `From` conversions both ways.
///
/// For `u8` enums the conversion from the integer is a 256-entry table built
/// at compile time (one load instead of a chain of compares: IP protocol
/// numbers are read once per packet).
macro_rules! enum_with_unknown {
    (
        $(#[$attr:meta])*
        pub enum $name:ident(u8) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        enum_with_unknown! {
            @define
            $(#[$attr])*
            pub enum $name(u8) { $( $(#[$vattr])* $variant = $value ),+ }
        }

        impl ::core::convert::From<u8> for $name {
            #[inline(always)]
            fn from(value: u8) -> Self {
                // A `static`, not a `const`: indexing a const array would
                // copy all 256 entries onto the stack first.
                static TABLE: [$name; 256] = {
                    let mut t = [$name::Unknown(0); 256];
                    let mut i = 0;
                    while i < 256 {
                        t[i] = $name::from_raw(i as u8);
                        i += 1;
                    }
                    t
                };
                TABLE[usize::from(value)]
            }
        }
    };
    (
        $(#[$attr:meta])*
        pub enum $name:ident(u16) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        enum_with_unknown! {
            @define
            $(#[$attr])*
            pub enum $name(u16) { $( $(#[$vattr])* $variant = $value ),+ }
        }

        impl ::core::convert::From<u16> for $name {
            #[inline(always)]
            fn from(value: u16) -> Self {
                $name::from_raw(value)
            }
        }
    };
    (
        @define
        $(#[$attr:meta])*
        pub enum $name:ident($ty:ty) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        pub enum $name {
            $(
                $(#[$vattr])*
                $variant,
            )+
            /// A value this library has no name for, kept as it was on the wire.
            Unknown($ty),
        }

        impl $name {
            /// The variant for a wire value.
            #[inline(always)]
            pub const fn from_raw(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub(crate) use enum_with_unknown;
