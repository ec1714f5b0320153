//! The `tally.v1.Metering` gRPC service: customers, meters, usage.
//!
//! Conversion only: every malformed field is reported by its path, and the
//! engine does the rest (`metering::operations`).

use std::collections::HashMap;
use std::sync::Arc;

use tally_core::error_code::ErrorCode;
use tally_core::meter::{Aggregation, MeterSpec};
use tally_core::usage::UsageEvent;
use tally_proto::v1 as pb;
use tally_proto::v1::metering_server::Metering;
use tonic::{Request, Response, Status};

use super::convert::{error_detail, metadata, timestamp, timestamp_ns};
use crate::engine::Engine;
use crate::error::LedgerError;
use crate::metering::aggregate::AggregateResult;
use crate::metering::catalog::{CustomerState, MeterVersion};
use crate::metering::ingest::CustomerSpec;
use crate::metering::operations::UsageAnswer;
use crate::metering::series::BucketWidth;
use crate::metering::stored::QueryFields;

pub struct MeteringService {
    engine: Arc<Engine>,
}

impl MeteringService {
    pub fn new(engine: Arc<Engine>) -> Self {
        MeteringService { engine }
    }
}

fn aggregation_from_proto(number: i32) -> Result<Aggregation, LedgerError> {
    use pb::Aggregation as P;
    match P::try_from(number) {
        Ok(P::Sum) => Ok(Aggregation::Sum),
        Ok(P::Count) => Ok(Aggregation::Count),
        Ok(P::Min) => Ok(Aggregation::Min),
        Ok(P::Max) => Ok(Aggregation::Max),
        Ok(P::UniqueCount) => Ok(Aggregation::UniqueCount),
        Ok(P::Latest) => Ok(Aggregation::Latest),
        Ok(P::Unspecified) => Err(LedgerError::new(
            ErrorCode::FieldRequired,
            "meter.aggregation",
            "aggregation is required: sum, count, min, max, unique_count or latest",
        )),
        Err(_) => Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "meter.aggregation",
            format!("unknown aggregation {number}"),
        )),
    }
}

fn aggregation_to_proto(aggregation: Aggregation) -> pb::Aggregation {
    match aggregation {
        Aggregation::Sum => pb::Aggregation::Sum,
        Aggregation::Count => pb::Aggregation::Count,
        Aggregation::Min => pb::Aggregation::Min,
        Aggregation::Max => pb::Aggregation::Max,
        Aggregation::UniqueCount => pb::Aggregation::UniqueCount,
        Aggregation::Latest => pb::Aggregation::Latest,
    }
}

fn width_from_proto(number: i32) -> Result<BucketWidth, LedgerError> {
    match pb::BucketWidth::try_from(number) {
        Ok(pb::BucketWidth::Minute) => Ok(BucketWidth::Minute),
        Ok(pb::BucketWidth::Hour) => Ok(BucketWidth::Hour),
        Ok(pb::BucketWidth::Day) => Ok(BucketWidth::Day),
        Ok(pb::BucketWidth::Unspecified) => Err(LedgerError::new(
            ErrorCode::FieldRequired,
            "width",
            "width is required: minute, hour or day",
        )),
        Err(_) => Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "width",
            format!("unknown bucket width {number}"),
        )),
    }
}

fn width_to_proto(width: BucketWidth) -> pb::BucketWidth {
    match width {
        BucketWidth::Minute => pb::BucketWidth::Minute,
        BucketWidth::Hour => pb::BucketWidth::Hour,
        BucketWidth::Day => pb::BucketWidth::Day,
    }
}

fn required_timestamp(
    timestamp: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<i64, LedgerError> {
    let timestamp = timestamp.ok_or_else(|| {
        LedgerError::new(
            ErrorCode::FieldRequired,
            field,
            format!("{field} is required"),
        )
    })?;
    timestamp_ns(timestamp, field)
}

fn customer(state: CustomerState) -> pb::Customer {
    pb::Customer {
        id: state.created.customer_id,
        name: state.created.name,
        metadata: state.created.metadata.into_iter().collect(),
        created_seq: state.created_seq,
        closed_through: state.closed_through.map(timestamp),
    }
}

fn meter_spec(meter: pb::Meter) -> Result<(MeterSpec, String), LedgerError> {
    let aggregation = aggregation_from_proto(meter.aggregation)?;
    Ok((
        MeterSpec {
            code: meter.code,
            aggregation,
            value_property: (!meter.value_property.is_empty()).then_some(meter.value_property),
            filters: meter
                .filters
                .into_iter()
                .map(|(property, values)| (property, values.values))
                .collect(),
            group_by: meter.group_by,
            grace_period_seconds: meter.grace_period_seconds,
        },
        meter.description,
    ))
}

fn meter_version(version: MeterVersion, created: bool) -> pb::MeterVersion {
    let spec = version.spec;
    pb::MeterVersion {
        meter: Some(pb::Meter {
            code: spec.code,
            aggregation: aggregation_to_proto(spec.aggregation) as i32,
            value_property: spec.value_property.unwrap_or_default(),
            filters: spec
                .filters
                .into_iter()
                .map(|(property, values)| (property, pb::FilterValues { values }))
                .collect(),
            group_by: spec.group_by,
            grace_period_seconds: spec.grace_period_seconds,
            description: version.description,
        }),
        version: version.version,
        seq: version.seq,
        defined_at: Some(timestamp(version.defined_at)),
        created,
    }
}

fn usage_event(event: pb::UsageEvent, index: usize) -> Result<UsageEvent, LedgerError> {
    // The field's path is built only for the error: 10,000 events a call.
    let timestamp = required_timestamp(event.timestamp.as_ref(), "timestamp").or_else(|_| {
        required_timestamp(
            event.timestamp.as_ref(),
            &format!("events[{index}].timestamp"),
        )
    })?;
    Ok(UsageEvent {
        event_id: event.event_id,
        customer: event.customer,
        meter: event.meter,
        timestamp,
        value: event.value,
        properties: event.properties.into_iter().collect(),
    })
}

fn proto_event(event: UsageEvent) -> pb::UsageEvent {
    pb::UsageEvent {
        event_id: event.event_id,
        customer: event.customer,
        meter: event.meter,
        timestamp: Some(timestamp(event.timestamp)),
        value: event.value,
        properties: event.properties.into_iter().collect(),
    }
}

fn query_fields(query: pb::QueryUsageRequest) -> Result<(QueryFields, bool), LedgerError> {
    let from = required_timestamp(query.from.as_ref(), "from")?;
    let to = required_timestamp(query.to.as_ref(), "to")?;
    Ok((
        QueryFields {
            meter: query.meter,
            customer: query.customer,
            from,
            to,
            filters: query
                .filters
                .into_iter()
                .map(|filter| (filter.property, filter.values))
                .collect(),
            group_by: query.group_by,
        },
        query.recompute,
    ))
}

/// One result's groups, each with its named group-by values.
fn groups(answer: &UsageAnswer, result: &AggregateResult) -> Vec<pb::UsageGroup> {
    let aggregation = answer.meter.spec.aggregation;
    result
        .groups
        .iter()
        .map(|(key, aggregate)| pb::UsageGroup {
            customer: key.customer.clone(),
            group: answer
                .query
                .group_by
                .iter()
                .cloned()
                .zip(key.group.iter().cloned())
                .collect::<HashMap<_, _>>(),
            count: aggregate.count,
            value: aggregate
                .value(aggregation)
                .map(|value| value.normalize().to_string())
                .unwrap_or_default(),
        })
        .collect()
}

#[tonic::async_trait]
impl Metering for MeteringService {
    async fn create_customers(
        &self,
        request: Request<pb::CreateCustomersRequest>,
    ) -> Result<Response<pb::CreateCustomersResponse>, Status> {
        let specs = request
            .into_inner()
            .customers
            .into_iter()
            .map(|c| CustomerSpec {
                customer_id: c.id,
                name: c.name,
                metadata: metadata(c.metadata),
            })
            .collect();
        let results = self.engine.create_customers(specs).await?;
        let results = results
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok((state, created)) => pb::CustomerResult {
                    index: index as u32,
                    outcome: Some(pb::customer_result::Outcome::Customer(customer(state))),
                    created,
                },
                Err(error) => pb::CustomerResult {
                    index: index as u32,
                    outcome: Some(pb::customer_result::Outcome::Error(error_detail(&error))),
                    created: false,
                },
            })
            .collect();
        Ok(Response::new(pb::CreateCustomersResponse { results }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let request = request.into_inner();
        let customers = self
            .engine
            .list_customers(&request.after, request.limit as usize)
            .into_iter()
            .map(customer)
            .collect();
        Ok(Response::new(pb::ListCustomersResponse { customers }))
    }

    async fn define_meter(
        &self,
        request: Request<pb::DefineMeterRequest>,
    ) -> Result<Response<pb::MeterVersion>, Status> {
        let meter = request.into_inner().meter.ok_or_else(|| {
            LedgerError::new(ErrorCode::FieldRequired, "meter", "meter is required")
        })?;
        let (spec, description) = meter_spec(meter)?;
        let defined = self.engine.define_meter(spec, description).await?;
        Ok(Response::new(meter_version(defined.meter, defined.created)))
    }

    async fn list_meters(
        &self,
        request: Request<pb::ListMetersRequest>,
    ) -> Result<Response<pb::ListMetersResponse>, Status> {
        let code = request.into_inner().code;
        let meters = self
            .engine
            .list_meters((!code.is_empty()).then_some(code.as_str()))?
            .into_iter()
            .map(|version| meter_version(version, false))
            .collect();
        Ok(Response::new(pb::ListMetersResponse { meters }))
    }

    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        let events = request
            .into_inner()
            .events
            .into_iter()
            .enumerate()
            .map(|(index, event)| usage_event(event, index))
            .collect();
        let results = self.engine.ingest_events(events).await?;
        let mut response = pb::IngestEventsResponse {
            results: Vec::with_capacity(results.len()),
            ..Default::default()
        };
        for (index, result) in results.into_iter().enumerate() {
            use pb::event_result::Outcome;
            let outcome = match result {
                Ok(recorded) => {
                    let place = pb::EventRecorded {
                        seq: recorded.seq,
                        index: recorded.index,
                        late: recorded.late,
                        counted: recorded.counted,
                    };
                    if recorded.duplicate {
                        response.duplicates += 1;
                        Outcome::Duplicate(place)
                    } else {
                        response.recorded += 1;
                        Outcome::Recorded(place)
                    }
                }
                Err(error) => {
                    response.rejected += 1;
                    Outcome::Error(error_detail(&error))
                }
            };
            response.results.push(pb::EventResult {
                index: index as u32,
                outcome: Some(outcome),
            });
        }
        Ok(Response::new(response))
    }

    async fn ingest_events_packed(
        &self,
        request: Request<pb::PackedEventsRequest>,
    ) -> Result<Response<pb::PackedEventsResponse>, Status> {
        let pb::PackedEventsRequest { batch } = request.into_inner();
        let events = super::packed_events::decode_events(&batch)
            .map_err(|error| super::status::ledger_status(&error.to_ledger_error()))?;
        drop(batch);
        let results = self
            .engine
            .ingest_events(events.into_iter().map(Ok).collect())
            .await?;
        let (results, [recorded, duplicates, rejected]) =
            super::packed_events::encode_results(&results);
        Ok(Response::new(pb::PackedEventsResponse {
            results: results.into(),
            recorded,
            duplicates,
            rejected,
        }))
    }

    async fn query_usage(
        &self,
        request: Request<pb::QueryUsageRequest>,
    ) -> Result<Response<pb::UsageResult>, Status> {
        let (fields, recompute) = query_fields(request.into_inner())?;
        let engine = Arc::clone(&self.engine);
        let answer = tokio::task::spawn_blocking(move || engine.query_usage(fields, recompute))
            .await
            .map_err(|e| super::status::internal("usage query", e))??;
        let result = &answer.buckets[0];
        Ok(Response::new(pb::UsageResult {
            meter: answer.meter.spec.code.clone(),
            aggregation: aggregation_to_proto(answer.meter.spec.aggregation) as i32,
            from: Some(timestamp(result.window.from())),
            to: Some(timestamp(result.window.to())),
            groups: groups(&answer, result),
            as_of_seq: answer.as_of_seq,
        }))
    }

    async fn query_usage_series(
        &self,
        request: Request<pb::QueryUsageSeriesRequest>,
    ) -> Result<Response<pb::UsageSeries>, Status> {
        let request = request.into_inner();
        let width = width_from_proto(request.width)?;
        let query = request.query.ok_or_else(|| {
            LedgerError::new(ErrorCode::FieldRequired, "query", "query is required")
        })?;
        let (fields, recompute) = query_fields(query).map_err(|e| e.within("query"))?;
        let engine = Arc::clone(&self.engine);
        let answer = tokio::task::spawn_blocking(move || {
            engine.query_usage_series(fields, width, recompute)
        })
        .await
        .map_err(|e| super::status::internal("usage series", e))??;
        let buckets = answer
            .buckets
            .iter()
            .map(|result| pb::UsageBucket {
                from: Some(timestamp(result.window.from())),
                to: Some(timestamp(result.window.to())),
                groups: groups(&answer, result),
            })
            .collect();
        Ok(Response::new(pb::UsageSeries {
            meter: answer.meter.spec.code.clone(),
            aggregation: aggregation_to_proto(answer.meter.spec.aggregation) as i32,
            width: width_to_proto(width) as i32,
            buckets,
            as_of_seq: answer.as_of_seq,
        }))
    }

    async fn close_usage_period(
        &self,
        request: Request<pb::CloseUsagePeriodRequest>,
    ) -> Result<Response<pb::CloseUsagePeriodResponse>, Status> {
        let request = request.into_inner();
        let through = required_timestamp(request.through.as_ref(), "through")?;
        let seq = self
            .engine
            .close_usage_period(request.customer, through)
            .await?;
        Ok(Response::new(pb::CloseUsagePeriodResponse { seq }))
    }

    async fn list_late_events(
        &self,
        request: Request<pb::ListLateEventsRequest>,
    ) -> Result<Response<pb::ListLateEventsResponse>, Status> {
        let request = request.into_inner();
        let customer = (!request.customer.is_empty()).then_some(request.customer.as_str());
        let (late, next) = self.engine.late_events(
            customer,
            (request.from_seq, request.from_index),
            request.limit as usize,
        )?;
        let (next_from_seq, next_from_index) = next.unwrap_or((0, 0));
        let events = late
            .into_iter()
            .map(|late| pb::LateEvent {
                event: Some(proto_event(late.event)),
                seq: late.seq,
                index: late.index,
                recorded_at: Some(timestamp(late.recorded_at)),
                closed_through: Some(timestamp(late.closed_through)),
            })
            .collect();
        Ok(Response::new(pb::ListLateEventsResponse {
            events,
            next_from_seq,
            next_from_index,
        }))
    }

    async fn prove_event(
        &self,
        request: Request<pb::ProveEventRequest>,
    ) -> Result<Response<pb::EventProof>, Status> {
        let request = request.into_inner();
        let tree_size = (request.tree_size != 0).then_some(request.tree_size);
        let engine = Arc::clone(&self.engine);
        let proof =
            tokio::task::spawn_blocking(move || engine.prove_event(&request.event_id, tree_size))
                .await
                .map_err(|e| super::status::internal("event proof", e))??;
        Ok(Response::new(pb::EventProof {
            event: Some(proto_event(proof.event)),
            seq: proof.seq,
            index: proof.index,
            event_count: proof.event_count,
            event_path: proof.event_path.iter().map(|h| h.to_vec()).collect(),
            entry: proof.entry,
            prev_hash: proof.prev_hash.to_vec(),
            inclusion: Some(pb::InclusionProof {
                seq: proof.seq,
                tree_size: proof.tree_size,
                hashes: proof.inclusion.iter().map(|h| h.to_vec()).collect(),
            }),
            checkpoint: proof.checkpoint,
        }))
    }
}
