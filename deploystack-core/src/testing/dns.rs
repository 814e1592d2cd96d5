//! A tiny DNS server on loopback for tests of domain verification: it answers TXT queries
//! from records a test sets, over UDP on `127.0.0.1:<free port>`, and nothing else.
//!
//! Tests point a [`DomainVerifier`](crate::domains::DomainVerifier) (or a server, through
//! `dns_servers`) at [`DnsTestServer::addr`], publish or change records while the code under
//! test runs, and make names fail on purpose. Built on hickory-proto's message codec, which
//! the resolver already brings, so it adds no dependency; it never leaves loopback.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the server answers, by lowercase name without the trailing dot.
#[derive(Debug, Default)]
struct Zone {
    /// TXT values per name; a name with an empty list exists but has no TXT record.
    txt: HashMap<String, Vec<String>>,
    /// Names answered with SERVFAIL.
    failing: HashSet<String>,
}

/// A DNS server answering TXT queries from records the test sets; stops when dropped.
#[derive(Debug)]
pub struct DnsTestServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DnsTestServer {
    /// Start serving on a free UDP port of 127.0.0.1. Returns once the socket is bound, so
    /// queries sent after this returns are answered.
    pub async fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let queries = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(socket, zone.clone(), queries.clone()));
        Ok(Self {
            addr,
            zone,
            queries,
            task,
        })
    }

    /// The address to ask.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publish TXT records at `name` (one record per value), replacing what was there.
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        let mut zone = self.zone.lock().unwrap_or_else(PoisonError::into_inner);
        zone.failing.remove(&key(name));
        zone.txt.insert(
            key(name),
            values.iter().map(|value| (*value).to_owned()).collect(),
        );
    }

    /// Remove every record at `name`: it no longer exists (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let mut zone = self.zone.lock().unwrap_or_else(PoisonError::into_inner);
        zone.txt.remove(&key(name));
        zone.failing.remove(&key(name));
    }

    /// Answer queries for `name` with SERVFAIL, as a broken authoritative server does.
    pub fn fail(&self, name: &str) {
        let mut zone = self.zone.lock().unwrap_or_else(PoisonError::into_inner);
        zone.failing.insert(key(name));
    }

    /// How many queries the server has answered.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicUsize>) {
    let mut buf = vec![0; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let response = answer(&query, &zone);
        queries.fetch_add(1, Ordering::SeqCst);
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn answer(query: &Message, zone: &Mutex<Zone>) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
    for question in &query.queries {
        // The name is echoed as asked: resolvers may randomise its case and check it.
        response.add_query(question.clone());
        let name = key(&question.name().to_ascii());
        if zone.failing.contains(&name) {
            response.metadata.response_code = ResponseCode::ServFail;
            continue;
        }
        match zone.txt.get(&name) {
            None => response.metadata.response_code = ResponseCode::NXDomain,
            Some(values) if question.query_type() == RecordType::TXT => {
                for value in values {
                    response.add_answer(Record::from_rdata(
                        question.name().clone(),
                        0,
                        RData::TXT(TXT::new(vec![value.clone()])),
                    ));
                }
            }
            // The name exists without records of that type: NOERROR, no answers.
            Some(_) => {}
        }
    }
    response
}
