// TLS for gRPC: the server's credentials (TLS, or mutual TLS when a client CA is given), kept
// in a certificate provider that SIGHUP re-reads (new connections get the new certificate,
// established ones keep theirs), and the client credentials of `aca push` and the controller
// client. Plaintext stays the default: Alcor's controllers speak it.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type {
  CaCertificateUpdate, CaCertificateUpdateListener, CertificateProvider, IdentityCertificateUpdate, IdentityCertificateUpdateListener,
} from '@grpc/grpc-js/build/src/certificate-provider.js';

export class TlsError extends Error {}

export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** Client CA bundle: when given, clients must present a certificate it signed (mutual TLS). */
  clientCa: string;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new TlsError(`cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Reads and checks a certificate, its key (they must match) and a CA bundle. */
function load(files: ServerTlsFiles): { identity: IdentityCertificateUpdate; ca: CaCertificateUpdate | null } {
  const certificate = read(files.cert, 'TLS certificate');
  const privateKey = read(files.key, 'TLS key');
  const caCertificate = files.clientCa === '' ? null : read(files.clientCa, 'TLS client CA');
  try {
    createSecureContext({ cert: certificate, key: privateKey, ...(caCertificate ? { ca: caCertificate } : {}) });
  } catch (e) {
    throw new TlsError(`TLS files ${files.cert}, ${files.key}${caCertificate ? `, ${files.clientCa}` : ''} are not usable: ${(e as Error).message}`);
  }
  return { identity: { certificate, privateKey }, ca: caCertificate ? { caCertificate } : null };
}

/** The server's certificate, key and client CA, re-read on reload(). */
export class ReloadableCertificates implements CertificateProvider {
  private identity: IdentityCertificateUpdate;
  private ca: CaCertificateUpdate | null;
  private readonly caListeners = new Set<CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<IdentityCertificateUpdateListener>();

  constructor(public files: ServerTlsFiles) {
    ({ identity: this.identity, ca: this.ca } = load(files));
  }

  get mutual(): boolean {
    return this.ca !== null;
  }

  /** Reads the files again (maybe new paths); on any error nothing changes and it throws. */
  reload(files: ServerTlsFiles = this.files): void {
    if ((files.clientCa === '') !== (this.files.clientCa === '')) throw new TlsError('turning mutual TLS on or off needs a restart');
    const next = load(files);
    this.files = files;
    this.identity = next.identity;
    this.ca = next.ca;
    for (const l of this.identityListeners) l(this.identity);
    if (this.ca) for (const l of this.caListeners) l(this.ca);
  }

  // The first update goes out after the call returns: grpc-js adds the server's watcher only
  // after it has added these listeners, and a synchronous update would reach no one.
  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => { if (this.ca && this.caListeners.has(listener)) listener(this.ca); });
  }

  removeCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => { if (this.identityListeners.has(listener)) listener(this.identity); });
  }

  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }
}

/** Server credentials: insecure without a provider, else TLS (mutual when it has a client CA). */
export function serverCredentials(certs: ReloadableCertificates | null): grpc.ServerCredentials {
  if (!certs) return grpc.ServerCredentials.createInsecure();
  // grpc-js passes its first argument on as the identity provider and its second as the CA
  // provider (whatever its .d.ts names them).
  return grpc.experimental.createCertificateProviderServerCredentials(certs, certs.mutual ? certs : null, certs.mutual);
}

export interface ClientTlsFiles {
  /** CA bundle the server's certificate must chain to; empty = plaintext. */
  ca: string;
  /** Client certificate and key for mutual TLS (both or neither). */
  cert?: string;
  key?: string;
}

/** Channel credentials for `aca push` and the controller client. */
export function clientCredentials(files: ClientTlsFiles): grpc.ChannelCredentials {
  if (files.ca === '') {
    if (files.cert || files.key) throw new TlsError('a client certificate needs the server CA as well (--tls-ca)');
    return grpc.credentials.createInsecure();
  }
  if (Boolean(files.cert) !== Boolean(files.key)) throw new TlsError('give the client certificate and its key together (--tls-cert and --tls-key)');
  const ca = read(files.ca, 'TLS CA');
  const cert = files.cert ? read(files.cert, 'TLS certificate') : null;
  const key = files.key ? read(files.key, 'TLS key') : null;
  try {
    createSecureContext({ ca, ...(cert && key ? { cert, key } : {}) });
  } catch (e) {
    throw new TlsError(`TLS files are not usable: ${(e as Error).message}`);
  }
  return grpc.credentials.createSsl(ca, key, cert);
}

/** True for addresses only this host can reach (no TLS warning for them). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}
