//! A small EnSync gRPC client over `tonic::client::Grpc` (the generated code has no client: the service's
//! `Connect` RPC would collide with the generated client's `connect` constructor). Used by tests and by
//! `herald events-bench`.

use herald_proto::ensync as pb;
use tonic::transport::{Channel, Endpoint};

const SVC: &str = "/ensync.EnSyncService/";

#[derive(Clone)]
pub struct Client(tonic::client::Grpc<Channel>);

impl Client {
    /// Connects (one HTTP/2 connection) to `addr` (`host:port`), plaintext.
    pub async fn new(addr: &str) -> anyhow::Result<Client> {
        let ch = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        Ok(Client(tonic::client::Grpc::new(ch)))
    }

    /// Calls `method` of `ensync.EnSyncService`.
    pub async fn unary<Req, Resp>(&mut self, method: &str, req: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.0.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::try_from(format!("{SVC}{method}"))
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        Ok(self.0.unary(tonic::Request::new(req), path, codec).await?.into_inner())
    }

    /// `Connect`; the session's client id, or an error with the server's text.
    pub async fn connect(&mut self, access_key: &str) -> anyhow::Result<String> {
        let r: pb::ConnectResponse =
            self.unary("Connect", pb::ConnectRequest { access_key: access_key.into() }).await?;
        anyhow::ensure!(r.success, "connect failed: {}", r.error_message);
        Ok(r.client_id)
    }

    /// `PublishMessage` with metadata `{}`; the event's idem, or an error with the server's text.
    pub async fn publish(&mut self, client_id: &str, name: &str, to: &str, payload: String) -> anyhow::Result<String> {
        let req = pb::PublishMessageRequest {
            client_id: client_id.into(),
            message_name: name.into(),
            payload,
            delivery_to: to.into(),
            metadata: "{}".into(),
            payload_metadata: None,
        };
        let r: pb::PublishMessageResponse = self.unary("PublishMessage", req).await?;
        anyhow::ensure!(r.success, "publish failed: {}", r.error_message);
        Ok(r.message_idem)
    }

    /// `AcknowledgeMessage`.
    pub async fn ack(&mut self, client_id: &str, m: &pb::MessageStreamResponse) -> anyhow::Result<()> {
        let req = pb::AcknowledgeRequest {
            client_id: client_id.into(),
            message_idem: m.message_idem.clone(),
            message_name: m.message_name.clone(),
            partition_block: m.partition_block,
        };
        let r: pb::AcknowledgeResponse = self.unary("AcknowledgeMessage", req).await?;
        anyhow::ensure!(r.success, "ack failed: {}", r.message);
        Ok(())
    }

    /// Opens a `Subscribe` stream.
    pub async fn subscribe(
        &mut self,
        client_id: &str,
        name: &str,
    ) -> Result<tonic::Streaming<pb::MessageStreamResponse>, tonic::Status> {
        self.0.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/ensync.EnSyncService/Subscribe");
        let codec = tonic_prost::ProstCodec::<pb::SubscribeRequest, pb::MessageStreamResponse>::default();
        let req = pb::SubscribeRequest { client_id: client_id.into(), message_name: name.into() };
        Ok(self.0.server_streaming(tonic::Request::new(req), path, codec).await?.into_inner())
    }
}
