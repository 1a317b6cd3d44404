//! Fan-out: each record of a stream projected, in one pass, into several streams of
//! different types.
//!
//! A stream with several consumers gives each of them a clone of every record. When the
//! consumers need different small parts of a large record, projecting each record once
//! into each branch's own row copies and allocates far less, and the record itself can be
//! moved into the one branch that needs all of it.

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::channels::pushers::Output;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Timestamp;
use timely::progress::operate::FrontierInterest;

/// One record in, rows out on several streams.
pub trait FanOut<'scope, T: Timestamp, D> {
    /// Calls `project` with each record and a tuple of buffers, one `Vec` per output
    /// (`(Vec<A>, Vec<B>)` up to five); the rows pushed to a buffer go out on that
    /// buffer's stream at the record's time.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::{Inspect, ToStream};
    /// use kappa::operators::FanOut;
    ///
    /// timely::example(|scope| {
    ///     let (even, text) = (0..4u32).to_stream(scope).container::<Vec<_>>().fan_out(
    ///         "Split",
    ///         |n, (even, text): &mut (Vec<u32>, Vec<String>)| {
    ///             if n % 2 == 0 {
    ///                 even.push(n);
    ///             }
    ///             text.push(n.to_string());
    ///         },
    ///     );
    ///     even.inspect(|n| assert_eq!(n % 2, 0));
    ///     text.inspect(|s| assert!(s.len() == 1));
    /// });
    /// ```
    fn fan_out<B: Branches<'scope, T>>(
        self,
        name: &str,
        project: impl FnMut(D, &mut B) + 'static,
    ) -> B::Streams;
}

/// The buffers of a fan-out's outputs: a tuple of `Vec`s, one per output stream.
pub trait Branches<'scope, T: Timestamp>: Default + 'static {
    /// The output streams, a tuple in the same order.
    type Streams;
    /// The operator's output ports.
    type Ports: 'static;
    /// Adds one output port per buffer.
    fn ports(builder: &mut OperatorBuilder<'scope, T>) -> (Self::Ports, Self::Streams);
    /// Sends each non-empty buffer at `cap`'s time, leaving it empty.
    fn send(&mut self, ports: &mut Self::Ports, cap: &InputCapability<T>);
    /// Tells the ports' consumers that this activation's rows are all sent.
    fn done(ports: &mut Self::Ports);
}

macro_rules! branches {
    ($($v:ident $i:tt),+) => {
        impl<'scope, T: Timestamp, $($v: Clone + 'static),+> Branches<'scope, T> for ($(Vec<$v>,)+) {
            type Streams = ($(Stream<'scope, T, Vec<$v>>,)+);
            type Ports = ($(Output<T, Vec<$v>>,)+);

            fn ports(builder: &mut OperatorBuilder<'scope, T>) -> (Self::Ports, Self::Streams) {
                let ports = ($(builder.new_output::<Vec<$v>>(),)+);
                (($(ports.$i.0,)+), ($(ports.$i.1,)+))
            }

            fn send(&mut self, ports: &mut Self::Ports, cap: &InputCapability<T>) {
                $(
                    if !self.$i.is_empty() {
                        ports.$i.give(cap, &mut self.$i);
                        // A sent buffer's contents are undefined.
                        self.$i.clear();
                    }
                )+
            }

            fn done(ports: &mut Self::Ports) {
                // A port's session flushes its consumers' buffers when it is dropped.
                $( drop(ports.$i.activate::<Vec<$v>>()); )+
            }
        }
    };
}

branches!(A 0, B 1);
branches!(A 0, B 1, C 2);
branches!(A 0, B 1, C 2, E 3);
branches!(A 0, B 1, C 2, E 3, F 4);

impl<'scope, T: Timestamp, D: Clone + 'static> FanOut<'scope, T, D> for Stream<'scope, T, Vec<D>> {
    fn fan_out<B: Branches<'scope, T>>(
        self,
        name: &str,
        mut project: impl FnMut(D, &mut B) + 'static,
    ) -> B::Streams {
        let mut builder = OperatorBuilder::new(name.to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        builder.set_notify_for(0, FrontierInterest::Never);
        let (mut ports, streams) = B::ports(&mut builder);
        let mut buffers = B::default();
        builder.build(move |_capabilities| {
            move |_frontiers| {
                input.for_each_time(|cap, data| {
                    for batch in data {
                        for record in batch.drain(..) {
                            project(record, &mut buffers);
                        }
                        buffers.send(&mut ports, &cap);
                    }
                });
                B::done(&mut ports);
            }
        });
        streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::collect;

    #[test]
    fn each_record_reaches_every_branch_it_is_projected_into_at_its_time() {
        for workers in [1, 2] {
            let input = vec![(0, vec![1u64, 2, 3]), (5, vec![4, 5])];
            let evens = collect(workers, input.clone(), |s| {
                s.fan_out("Test", |n, (even, _): &mut (Vec<u64>, Vec<String>)| {
                    if n % 2 == 0 {
                        even.push(n)
                    }
                })
                .0
            });
            assert_eq!(evens, vec![(0, 2), (5, 4)], "-w {workers}");
            let text = collect(workers, input, |s| {
                s.fan_out("Test", |n, (_, text, _): &mut (Vec<u64>, Vec<String>, Vec<()>)| {
                    text.push(format!("n{n}"))
                })
                .1
            });
            let expected: Vec<(u64, String)> =
                [(0, "n1"), (0, "n2"), (0, "n3"), (5, "n4"), (5, "n5")].map(|(t, s)| (t, s.into())).into();
            assert_eq!(text, expected, "-w {workers}");
        }
    }
}
